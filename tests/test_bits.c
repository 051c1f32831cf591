#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "qat/bits.h"
#include "tests/test_util.h"

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

#define MAX_LAYERS 8

/* A problem with its own storage, so tests build tables in place. */
typedef struct test_problem {
    qat_bits_problem p;
    qat_bits_layer layers[MAX_LAYERS];
} test_problem;

static void problem_init(test_problem *t, int nlayers, int ncandidates, const int *bits, uint64_t budget)
{
    memset(t, 0, sizeof *t);
    cr_assert(nlayers <= MAX_LAYERS);
    t->p.nlayers = nlayers;
    t->p.layers = t->layers;
    t->p.ncandidates = ncandidates;
    for (int k = 0; k < ncandidates; k++) t->p.bits[k] = bits[k];
    t->p.budget_bytes = budget;
    for (int l = 0; l < nlayers; l++) {
        snprintf(t->layers[l].name, sizeof t->layers[l].name, "layer%d", l);
        t->layers[l].first = l == 0;
        t->layers[l].last = l == nlayers - 1;
    }
}

/* Layer l takes numel * bits / 8 bytes (numel a multiple of 8, no scales). */
static void problem_set_numel(test_problem *t, int l, int64_t numel)
{
    t->layers[l].numel = numel;
    for (int k = 0; k < t->p.ncandidates; k++) t->layers[l].bytes[k] = (uint64_t)(numel * t->p.bits[k] / 8);
}

static const qat_bits_strategy *strategy(const char *name)
{
    const qat_bits_strategy *s = qat_bits_strategy_find(name);
    cr_assert(s, "no strategy %s", name);
    return s;
}

/* Every assignment: the least cost within the budget and, among the
 * assignments of exactly that cost, the fewest bytes. False when none fits. */
static bool brute_force(const qat_bits_problem *p, double *best_cost, uint64_t *best_bytes)
{
    int choice[MAX_LAYERS] = {0};
    bool found = false;
    for (;;) {
        uint64_t bytes = qat_bits_total_bytes(p, choice);
        if (bytes <= p->budget_bytes) {
            double cost = qat_bits_total_cost(p, choice);
            if (!found || cost < *best_cost || (cost == *best_cost && bytes < *best_bytes)) {
                *best_cost = cost;
                *best_bytes = bytes;
                found = true;
            }
        }
        int l = 0;
        while (l < p->nlayers && ++choice[l] == p->ncandidates) choice[l++] = 0;
        if (l == p->nlayers) return found;
    }
}

/* A random table: 1-6 layers, 2-4 candidates among 2..8 bits, bytes
 * non-decreasing in the width (sometimes flat, sometimes in multiples of a
 * common unit, as real tables are), costs sometimes small integers (ties)
 * and sometimes not decreasing, and a budget from below the smallest total
 * (infeasible) to above the largest. */
static void random_problem(test_problem *t, test_rng *r)
{
    int bits[QAT_BITS_MAX_CANDIDATES], nc = 0;
    const int want = 2 + (int)(test_rng_next(r) % 3);
    while (nc < want) {
        nc = 0;
        for (int b = QAT_QBITS_MIN; b <= QAT_QBITS_MAX; b++)
            if (test_rng_next(r) % 7 < 3) bits[nc++] = b;
    }
    nc = want; /* the first `want` of an ascending subset */
    const int nl = 1 + (int)(test_rng_next(r) % 6);
    problem_init(t, nl, nc, bits, 0);
    t->p.has_cost = true;
    const uint64_t unit = test_rng_next(r) % 3 == 0 ? 1 + test_rng_next(r) % 9 : 1;
    const bool integer_costs = test_rng_next(r) % 2;
    uint64_t lo = 0, hi = 0;
    for (int l = 0; l < nl; l++) {
        qat_bits_layer *layer = &t->layers[l];
        layer->bytes[0] = 1 + test_rng_next(r) % 40;
        for (int k = 1; k < nc; k++)
            layer->bytes[k] = layer->bytes[k - 1] + unit * (test_rng_next(r) % 4 == 0 ? 0 : test_rng_next(r) % 30);
        for (int k = 0; k < nc; k++)
            layer->cost[k] = integer_costs ? (double)(test_rng_next(r) % 5)
                                           : (double)(nc - k) * test_rng_float(r, 0.001f, 1.0f);
        lo += layer->bytes[0];
        hi += layer->bytes[nc - 1];
    }
    t->p.budget_bytes = lo - lo / 4 + test_rng_next(r) % (hi - lo + lo / 4 + 5);
}

/* The optimiser is exact: the least cost that brute force finds, at the
 * fewest bytes among equal costs, and an error exactly when nothing fits. */
Test(bits, hawq_matches_brute_force)
{
    test_rng r = {0x9e3779b97f4a7c15ull};
    int infeasible = 0, integer_costs = 0;
    for (int trial = 0; trial < 3000; trial++) {
        test_problem t;
        random_problem(&t, &r);
        double want_cost = 0;
        uint64_t want_bytes = 0;
        const bool feasible = brute_force(&t.p, &want_cost, &want_bytes);
        int choice[MAX_LAYERS];
        qat_status st = qat_bits_assign(strategy("hawq"), &t.p, choice);
        if (!feasible) {
            cr_assert_eq(st, QAT_ERR_INVALID, "trial %d: no assignment fits, yet hawq succeeded", trial);
            assert_error_mentions("smallest width");
            infeasible++;
            continue;
        }
        cr_assert_eq(st, QAT_OK, "trial %d: %s", trial, qat_error_message());
        /* Both sum in layer order and rounding is monotone: equal exactly. */
        cr_assert(qat_bits_total_cost(&t.p, choice) == want_cost, "trial %d: cost %.17g, brute force %.17g", trial,
                  qat_bits_total_cost(&t.p, choice), want_cost);
        cr_assert_eq(qat_bits_total_bytes(&t.p, choice), want_bytes, "trial %d", trial);
        integer_costs += want_cost == floor(want_cost); /* ties likely */
    }
    /* The generator reaches every branch worth checking. */
    cr_assert_gt(infeasible, 100);
    cr_assert_gt(integer_costs, 300);
}

/* Greedy always fits when anything does and never beats the optimum; on
 * these tables (often non-convex costs) it reaches it in about 44% of the
 * cases, so both outcomes are exercised. */
Test(bits, greedy_fits_and_is_never_better_than_brute_force)
{
    test_rng r = {0x2545f4914f6cdd1dull};
    int optimal = 0, feasible_trials = 0;
    for (int trial = 0; trial < 2000; trial++) {
        test_problem t;
        random_problem(&t, &r);
        double want_cost = 0;
        uint64_t want_bytes = 0;
        const bool feasible = brute_force(&t.p, &want_cost, &want_bytes);
        int choice[MAX_LAYERS];
        qat_status st = qat_bits_assign(strategy("greedy"), &t.p, choice);
        cr_assert_eq(st, feasible ? QAT_OK : QAT_ERR_INVALID, "trial %d: %s", trial, qat_error_message());
        if (!feasible) continue;
        feasible_trials++;
        cr_assert_leq(qat_bits_total_bytes(&t.p, choice), t.p.budget_bytes);
        const double cost = qat_bits_total_cost(&t.p, choice);
        cr_assert_geq(cost, want_cost, "trial %d", trial);
        optimal += cost == want_cost;
    }
    cr_assert(optimal > 0 && optimal < feasible_trials, "greedy optimal in %d of %d", optimal, feasible_trials);
}

/* Three layers of 100 weights at 2/4/8 bits (25/50/100 bytes), 200 bytes
 * allowed: 100 to save. Greedy lowers layer2 8->4 (0.5 per 50 bytes), then
 * layer0 8->4 (1 per 50 bytes, tied with layer2 4->2 at 0.5 per 25 bytes:
 * the earlier layer wins) and stops at exactly 200 bytes, cost 1.5: the
 * optimum, as brute force confirms. */
Test(bits, greedy_hand_case_optimal)
{
    static const int bits[] = {2, 4, 8};
    static const double cost[3][3] = {{4, 1, 0}, {9, 2, 0}, {1, 0.5, 0}};
    test_problem t;
    problem_init(&t, 3, 3, bits, 200);
    t.p.has_cost = true;
    for (int l = 0; l < 3; l++) {
        problem_set_numel(&t, l, 100);
        memcpy(t.layers[l].cost, cost[l], sizeof cost[l]);
    }
    int choice[3];
    cr_assert_eq(qat_bits_assign(strategy("greedy"), &t.p, choice), QAT_OK, "%s", qat_error_message());
    cr_assert(choice[0] == 1 && choice[1] == 2 && choice[2] == 1, "chose %d %d %d", choice[0], choice[1], choice[2]);
    cr_assert_eq(qat_bits_total_bytes(&t.p, choice), 200);
    double best;
    uint64_t best_bytes;
    cr_assert(brute_force(&t.p, &best, &best_bytes));
    cr_assert(qat_bits_total_cost(&t.p, choice) == best && best == 1.5);
}

/* Where greedy is not optimal: 10 bytes to save. Layer1's step saves 100
 * bytes for a rise of 50 (0.5 per byte), layer0's saves 10 for 10 (1 per
 * byte); greedy takes the cheaper rate and pays 50, though layer0's step
 * alone fits at a cost of 10. It never undoes a step, so it cannot see that
 * the cheap rate bought far more bytes than needed. hawq finds 10. */
Test(bits, greedy_hand_case_not_optimal)
{
    static const int bits[] = {2, 4};
    test_problem t;
    problem_init(&t, 2, 2, bits, 120);
    t.p.has_cost = true;
    t.layers[0] = (qat_bits_layer){.name = "a", .bytes = {10, 20}, .cost = {10, 0}, .first = true};
    t.layers[1] = (qat_bits_layer){.name = "b", .bytes = {10, 110}, .cost = {50, 0}, .last = true};
    int choice[2];
    cr_assert_eq(qat_bits_assign(strategy("greedy"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 1 && choice[1] == 0);
    cr_assert(qat_bits_total_cost(&t.p, choice) == 50);
    cr_assert_eq(qat_bits_total_bytes(&t.p, choice), 30);
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 0 && choice[1] == 1);
    cr_assert(qat_bits_total_cost(&t.p, choice) == 10);
}

/* Equal bytes at two widths (tiny layers, or 5..8 bits one byte per code):
 * greedy skips the step that saves nothing instead of stalling on it. */
Test(bits, greedy_steps_over_widths_of_equal_bytes)
{
    static const int bits[] = {4, 6, 8};
    test_problem t;
    problem_init(&t, 1, 3, bits, 60);
    t.p.has_cost = true;
    t.layers[0].bytes[0] = 50, t.layers[0].bytes[1] = 100, t.layers[0].bytes[2] = 100;
    t.layers[0].cost[0] = 3, t.layers[0].cost[1] = 1, t.layers[0].cost[2] = 0;
    int choice[1];
    cr_assert_eq(qat_bits_assign(strategy("greedy"), &t.p, choice), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(choice[0], 0);
    t.p.budget_bytes = 49;
    cr_assert_eq(qat_bits_assign(strategy("greedy"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("50 bytes, over the budget of 49 bytes");
}

/* hawq with ties everywhere: the fewest bytes, then the earlier candidate. */
Test(bits, hawq_ties_prefer_fewer_bytes)
{
    static const int bits[] = {2, 4, 8};
    test_problem t;
    problem_init(&t, 2, 3, bits, 1000);
    t.p.has_cost = true;
    problem_set_numel(&t, 0, 80);
    problem_set_numel(&t, 1, 160);
    /* Nothing costs anything: the smallest widths. */
    int choice[2];
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 0 && choice[1] == 0);
    /* Layer 1 is free at 4 or 8 bits: 4. */
    t.layers[1].cost[0] = 1;
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 0 && choice[1] == 1);
}

/* The slack is counted in units of the byte increments' gcd (here 40 and
 * 80 bytes: units of 40), rounded down; a budget 39 bytes short of the next
 * unit must not buy it. */
Test(bits, hawq_rounds_the_slack_down_to_whole_units)
{
    static const int bits[] = {2, 4};
    test_problem t;
    problem_init(&t, 2, 2, bits, 0);
    t.p.has_cost = true;
    t.layers[0] = (qat_bits_layer){.name = "a", .bytes = {7, 47}, .cost = {1, 0}};
    t.layers[1] = (qat_bits_layer){.name = "b", .bytes = {11, 91}, .cost = {3, 0}};
    int choice[2];
    t.p.budget_bytes = 7 + 11 + 79;
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 1 && choice[1] == 0); /* 80 bytes for 3 do not fit in 79 */
    t.p.budget_bytes = 7 + 11 + 80;
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 0 && choice[1] == 1);
    t.p.budget_bytes = UINT64_MAX; /* clamped to what the widest choice uses */
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 1 && choice[1] == 1);
}

/* A table past the memory limit is refused with a hint, not allocated. */
Test(bits, hawq_refuses_a_huge_table)
{
    static const int bits[] = {2, 8};
    test_problem t;
    problem_init(&t, 2, 2, bits, UINT64_MAX);
    t.p.has_cost = true;
    t.layers[0] = (qat_bits_layer){.name = "a", .bytes = {1, 1ull << 30}, .cost = {1, 0}};
    t.layers[1] = (qat_bits_layer){.name = "b", .bytes = {1, 2}, .cost = {1, 0}};
    int choice[2];
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("greedy");
}

/* Strategies that read cost[] refuse a table without one. */
Test(bits, cost_strategies_need_a_sensitivity)
{
    static const int bits[] = {2, 4};
    test_problem t;
    problem_init(&t, 1, 2, bits, 100);
    problem_set_numel(&t, 0, 8);
    int choice[1];
    for (const qat_bits_strategy *const *s = qat_bits_strategies; *s; s++) {
        if (!(*s)->needs_cost) continue;
        cr_assert_eq(qat_bits_assign(*s, &t.p, choice), QAT_ERR_INVALID, "%s", (*s)->name);
        assert_error_mentions("sensitivity");
    }
    t.p.has_cost = true;
    t.layers[0].cost[1] = NAN;
    cr_assert_eq(qat_bits_assign(strategy("hawq"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("layer0: the cost at 4 bits is nan");
    t.layers[0].cost[1] = -1;
    cr_assert_eq(qat_bits_assign(strategy("greedy"), &t.p, choice), QAT_ERR_INVALID);
}

/* Three layers of 80, 160 and 80 weights at 2/4/8 bits: 80, 160, 320 bytes
 * uniformly. */
static void three_layers(test_problem *t, uint64_t budget)
{
    static const int bits[] = {2, 4, 8};
    problem_init(t, 3, 3, bits, budget);
    problem_set_numel(t, 0, 80);
    problem_set_numel(t, 1, 160);
    problem_set_numel(t, 2, 80);
}

Test(bits, uniform_takes_the_largest_width_that_fits)
{
    static const struct {
        uint64_t budget;
        int choice; /* -1: none fits */
    } cases[] = {{320, 2}, {1000, 2}, {319, 1}, {160, 1}, {159, 0}, {80, 0}, {79, -1}, {0, -1}};
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        test_problem t;
        three_layers(&t, cases[i].budget);
        int choice[3];
        qat_status st = qat_bits_assign(strategy("uniform"), &t.p, choice);
        if (cases[i].choice < 0) {
            cr_assert_eq(st, QAT_ERR_INVALID);
            char want[64];
            snprintf(want, sizeof want, "budget is %llu bytes", (unsigned long long)cases[i].budget);
            assert_error_mentions(want);
            assert_error_mentions("at least 80 bytes");
            continue;
        }
        cr_assert_eq(st, QAT_OK, "budget %llu", (unsigned long long)cases[i].budget);
        for (int l = 0; l < 3; l++) cr_assert_eq(choice[l], cases[i].choice, "budget %llu", (unsigned long long)cases[i].budget);
    }
}

Test(bits, manual_checks_the_map)
{
    test_problem t;
    three_layers(&t, 200);
    int choice[3];
    cr_assert_eq(qat_bits_assign(strategy("manual"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("the manual strategy needs a map (--map FILE)");

    const int map[] = {8, 2, 4}; /* 80 + 40 + 40 bytes */
    t.p.manual_bits = map;
    cr_assert_eq(qat_bits_assign(strategy("manual"), &t.p, choice), QAT_OK, "%s", qat_error_message());
    cr_assert(choice[0] == 2 && choice[1] == 0 && choice[2] == 1);

    t.p.budget_bytes = 159;
    cr_assert_eq(qat_bits_assign(strategy("manual"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("160 bytes, over the budget of 159 bytes");
    t.p.budget_bytes = UINT64_MAX; /* no budget */
    const int wide[] = {8, 8, 8};
    t.p.manual_bits = wide;
    cr_assert_eq(qat_bits_assign(strategy("manual"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 2 && choice[1] == 2 && choice[2] == 2);

    const int odd[] = {8, 3, 4};
    t.p.manual_bits = odd;
    cr_assert_eq(qat_bits_assign(strategy("manual"), &t.p, choice), QAT_ERR_INVALID);
    assert_error_mentions("layer1 has 3 bits");
}

/* A gpt-like table: two attention layers (the first is also first), two
 * MLPs, the head last; high = {attn0, attn1, head} with 300 weights, low =
 * the MLPs with 800: a pair (hi, lo) takes 37.5 hi + 100 lo bytes. */
Test(bits, rules_hand_cases)
{
    static const int bits[] = {2, 4, 8};
    static const struct {
        uint64_t budget;
        int hi, lo; /* candidate indices; -1: none fits */
    } cases[] = {
        {1100, 2, 2}, {1099, 2, 1}, {700, 2, 1}, {699, 1, 1}, {550, 1, 1},
        {549, 2, 0},  {500, 2, 0},  {499, 1, 0}, {275, 0, 0}, {274, -1, -1},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        test_problem t;
        problem_init(&t, 5, 3, bits, cases[i].budget);
        static const int64_t numel[] = {80, 160, 400, 400, 60};
        static const qat_bits_role role[] = {QAT_BITS_ROLE_ATTENTION, QAT_BITS_ROLE_ATTENTION, QAT_BITS_ROLE_MLP,
                                             QAT_BITS_ROLE_MLP, QAT_BITS_ROLE_OTHER};
        for (int l = 0; l < 5; l++) {
            problem_set_numel(&t, l, numel[l]);
            t.layers[l].role = role[l];
        }
        int choice[5];
        qat_status st = qat_bits_assign(strategy("rules"), &t.p, choice);
        if (cases[i].hi < 0) {
            cr_assert_eq(st, QAT_ERR_INVALID);
            assert_error_mentions("the budget is 274 bytes, but every layer at 2 bits takes 275 bytes");
            continue;
        }
        cr_assert_eq(st, QAT_OK, "budget %llu", (unsigned long long)cases[i].budget);
        const int want[] = {cases[i].hi, cases[i].hi, cases[i].lo, cases[i].lo, cases[i].hi};
        for (int l = 0; l < 5; l++)
            cr_assert_eq(choice[l], want[l], "budget %llu, layer %d", (unsigned long long)cases[i].budget, l);
    }
}

/* An image model: no roles, so the ends high and the middle low. The
 * middle layer holds most weights: at 8/2/8 bits it takes 80 + 200 + 80
 * bytes, where 4 bits everywhere would take 40 + 400 + 40. */
Test(bits, rules_without_roles_keeps_the_ends_high)
{
    static const int bits[] = {2, 4, 8};
    test_problem t;
    problem_init(&t, 3, 3, bits, 360);
    problem_set_numel(&t, 0, 80);
    problem_set_numel(&t, 1, 800);
    problem_set_numel(&t, 2, 80);
    int choice[3];
    cr_assert_eq(qat_bits_assign(strategy("rules"), &t.p, choice), QAT_OK);
    cr_assert(choice[0] == 2 && choice[1] == 0 && choice[2] == 2, "chose %d %d %d", choice[0], choice[1], choice[2]);
}

/* A strategy that answers over the budget is a bug, caught by the check. */
static qat_status overspending_assign(const qat_bits_problem *p, int *choice)
{
    for (int l = 0; l < p->nlayers; l++) choice[l] = p->ncandidates - 1;
    return QAT_OK;
}

Test(bits, assign_asserts_on_a_strategy_over_budget, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    static const qat_bits_strategy bad = {"bad", "over budget", false, overspending_assign};
    test_problem t;
    three_layers(&t, 100);
    int choice[3];
    qat_bits_assign(&bad, &t.p, choice);
}

static qat_status forgetful_assign(const qat_bits_problem *p, int *choice)
{
    (void)p, (void)choice;
    return QAT_OK;
}

Test(bits, assign_asserts_on_a_strategy_that_chooses_nothing, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    static const qat_bits_strategy bad = {"bad", "chooses nothing", false, forgetful_assign};
    test_problem t;
    three_layers(&t, 1000);
    int choice[3];
    qat_bits_assign(&bad, &t.p, choice);
}

Test(bits, registry)
{
    int n = 0;
    for (const qat_bits_strategy *const *s = qat_bits_strategies; *s; s++, n++) {
        cr_assert((*s)->name && (*s)->name[0]);
        cr_assert((*s)->summary && (*s)->summary[0], "%s has no summary", (*s)->name);
        cr_assert((*s)->assign, "%s has no assign", (*s)->name);
        cr_assert_eq(qat_bits_strategy_find((*s)->name), *s, "%s: the name is not unique", (*s)->name);
    }
    cr_assert_eq(n, 5);
    cr_assert_null(qat_bits_strategy_find("no-such-strategy"));
    cr_assert_null(qat_bits_strategy_find(""));
    cr_assert(strategy("hawq")->needs_cost && strategy("greedy")->needs_cost);
    cr_assert(!strategy("uniform")->needs_cost && !strategy("manual")->needs_cost && !strategy("rules")->needs_cost);
}

Test(bits, budget_parse_good)
{
    static const struct {
        const char *text;
        bool is_bytes;
        double bits;
        uint64_t bytes;
    } cases[] = {
        {"3", false, 3, 0},
        {"2.5", false, 2.5, 0},
        {"1", false, 1, 0},
        {"8", false, 8, 0},
        {"8.000", false, 8, 0},
        {"2.125", false, 2.125, 0},
        {"03.50", false, 3.5, 0},
        {"120000B", true, 0, 120000},
        {"120KB", true, 0, 120000},
        {"120kB", true, 0, 120000},
        {"1.5MB", true, 0, 1500000},
        {"2GB", true, 0, 2000000000},
        {"0.2MiB", true, 0, 209715}, /* 209715.2, rounded down */
        {"1KiB", true, 0, 1024},
        {"3K", true, 0, 3072},
        {"1.5M", true, 0, 1572864},
        {"1G", true, 0, 1073741824},
        {"0.000000001GiB", true, 0, 1},
        {"999999999999999999B", true, 0, 999999999999999999ull},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        bool is_bytes = !cases[i].is_bytes;
        double bits = -1;
        uint64_t bytes = 0;
        cr_assert(qat_bits_budget_parse(cases[i].text, &is_bytes, &bits, &bytes), "\"%s\" rejected", cases[i].text);
        cr_assert_eq(is_bytes, cases[i].is_bytes, "\"%s\"", cases[i].text);
        if (is_bytes)
            cr_assert_eq(bytes, cases[i].bytes, "\"%s\": %llu bytes", cases[i].text, (unsigned long long)bytes);
        else
            cr_assert(bits == cases[i].bits, "\"%s\": %g bits", cases[i].text, bits);
    }
}

Test(bits, budget_parse_bad)
{
    static const char *const cases[] = {
        "", "-3", "+3", "0", "0.999", "8.001", "9", "2.1234", "nan", "inf", "3x", "3 ", " 3", "3e0", "120",
        "12e3B", "-1KB", "1.5 MB", "KB", "B", ".", "..5", "1..5", "3B2", "3b", "3kb", "3TB", "3Kib",
        "9999999999999999999B",     /* too many digits */
        "17179869184G",             /* 2^64 bytes */
        "0.0000000001GiB",          /* more decimals than a size takes */
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        bool is_bytes = false;
        double bits = 0;
        uint64_t bytes = 0;
        cr_assert(!qat_bits_budget_parse(cases[i], &is_bytes, &bits, &bytes), "\"%s\" accepted", cases[i]);
    }
}

/* A quantized checkpoint stores packed codes, then an FP32 scale and an
 * int32 zero point per scale group. */
Test(bits, weight_bytes)
{
    static const struct {
        int64_t rows, cols;
        qat_granularity gran;
        int group;
    } shapes[] = {
        {1, 1, QAT_GRAN_TENSOR, 0},   {3, 5, QAT_GRAN_TENSOR, 0},   {7, 13, QAT_GRAN_CHANNEL, 0},
        {3, 5, QAT_GRAN_GROUP, 4},    {17, 129, QAT_GRAN_GROUP, 64}, {64, 256, QAT_GRAN_GROUP, 64},
        {10, 784, QAT_GRAN_CHANNEL, 0},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(shapes); i++)
        for (int b = QAT_QBITS_MIN; b <= QAT_QBITS_MAX; b++) {
            qat_qscheme s = {.bits = b, .symmetric = true, .gran = shapes[i].gran, .group = shapes[i].group};
            int64_t count = shapes[i].rows * shapes[i].cols;
            uint64_t want = qat_packed_size(count, b) + 8 * (uint64_t)qat_qscheme_scale_count(&s, shapes[i].rows, shapes[i].cols);
            cr_assert_eq(qat_bits_weight_bytes(shapes[i].rows, shapes[i].cols, b, shapes[i].gran, shapes[i].group), want,
                         "shape %zu, %d bits", i, b);
        }
    /* By hand at 4 and 8 bits, where every packing agrees: 15 codes take 8
     * bytes at 4 bits, 15 at 8; tensor 1 scale, channel 3, group:4 6. */
    cr_assert_eq(qat_bits_weight_bytes(3, 5, 4, QAT_GRAN_TENSOR, 0), 8 + 8);
    cr_assert_eq(qat_bits_weight_bytes(3, 5, 8, QAT_GRAN_CHANNEL, 0), 15 + 24);
    cr_assert_eq(qat_bits_weight_bytes(3, 5, 8, QAT_GRAN_GROUP, 4), 15 + 48);
}

/* The definition, exactly: ceil(numel * avg / 8) + scales per layer. 720 x
 * 2.7 bits is 243 bytes, where a double product would round up to 244. */
Test(bits, budget_from_avg_is_exact)
{
    static const int64_t numel[] = {720, 7, 1001, 0};
    static const uint64_t scales[] = {8, 16, 0, 8};
    bool is_bytes;
    double avg;
    uint64_t unused;
    cr_assert(qat_bits_budget_parse("2.7", &is_bytes, &avg, &unused) && !is_bytes);
    /* 243 + 8, ceil(2.3625) + 16, ceil(337.8375) + 0, 0 + 8 */
    cr_assert_eq(qat_bits_budget_from_avg(4, numel, scales, avg), 251 + 19 + 338 + 8);
    cr_assert_eq(qat_bits_budget_from_avg(4, numel, scales, 8), 720 + 8 + 7 + 16 + 1001 + 8);
    cr_assert_eq(qat_bits_budget_from_avg(0, NULL, NULL, 3), 0);
}

/* Every layer at b bits meets a budget of b average bits exactly, on odd
 * sizes. That holds for dense bit packing (ceil(count * bits / 8) bytes);
 * with nibble packing only 4 and 8 bits pack densely, so the other widths
 * are checked where qat_packed_size is dense. */
Test(bits, budget_from_avg_fits_uniform_exactly)
{
    static const struct {
        int64_t rows, cols;
        qat_granularity gran;
        int group;
    } shapes[] = {{7, 13, QAT_GRAN_CHANNEL, 0}, {3, 101, QAT_GRAN_GROUP, 32}, {1, 1, QAT_GRAN_TENSOR, 0},
                  {33, 65, QAT_GRAN_TENSOR, 0}, {9, 9, QAT_GRAN_GROUP, 4}};
    enum { N = QAT_ARRAY_LEN(shapes) };
    int64_t numel[N];
    uint64_t scales[N];
    for (int l = 0; l < N; l++) {
        qat_qscheme s = {.bits = 8, .symmetric = true, .gran = shapes[l].gran, .group = shapes[l].group};
        numel[l] = shapes[l].rows * shapes[l].cols;
        scales[l] = 8 * (uint64_t)qat_qscheme_scale_count(&s, shapes[l].rows, shapes[l].cols);
    }
    int checked = 0;
    for (int b = QAT_QBITS_MIN; b <= QAT_QBITS_MAX; b++) {
        bool dense = true;
        for (int l = 0; l < N; l++) dense &= qat_packed_size(numel[l], b) == (size_t)((numel[l] * b + 7) / 8);
        if (!dense) continue;
        uint64_t uniform = 0;
        for (int l = 0; l < N; l++)
            uniform += qat_bits_weight_bytes(shapes[l].rows, shapes[l].cols, b, shapes[l].gran, shapes[l].group);
        cr_assert_eq(qat_bits_budget_from_avg(N, numel, scales, b), uniform, "%d bits", b);
        checked++;
    }
    cr_assert_geq(checked, 2); /* 4 and 8 bits under any packing */
}
