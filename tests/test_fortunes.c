#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/fortunes.h"
#include "qat/fileio.h"
#include "tests/test_util.h"

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

TestSuite(fortunes, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

static const char *const tech[] = {"computers", "debian", "linux", "linuxcookie", "perl"};

/* Writes `text` (NUL-terminated, so binary-free) as `name` under `dir`. */
static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(qat_file_write_atomic(path, text, strlen(text)), QAT_OK, "%s", qat_error_message());
}

static const char *make_subdir(const char *name)
{
    const char *path = test_tmp_path(name);
    cr_assert_eq(mkdir(path, 0777), 0);
    return path;
}

static void load_ok(const char *spec, const char *dir, uint32_t val_permille, qat_text_corpus *c)
{
    cr_assert_eq(qat_fortunes_load(spec, dir, val_permille, c), QAT_OK, "%s: %s", spec, qat_error_message());
}

static void assert_stream(const qat_text_set *set, const char *expected, uint32_t entries)
{
    size_t n = strlen(expected);
    cr_assert_eq(set->len, n, "stream has %zu bytes, expected %zu: \"%.*s\"", set->len, n, (int)set->len,
                 set->bytes ? (const char *)set->bytes : "");
    cr_assert(n == 0 || memcmp(set->bytes, expected, n) == 0, "stream \"%.*s\", expected \"%s\"",
              (int)set->len, (const char *)set->bytes, expected);
    cr_assert_eq(set->entries, entries);
}

/* Loading must fail with `status`, leave *out zeroed and give one line
 * mentioning `mention1` (and `mention2` if not NULL). */
static void load_fails(const char *spec, const char *dir, uint32_t val_permille, qat_status status,
                       const char *mention1, const char *mention2)
{
    qat_text_corpus c;
    memset(&c, 0xAB, sizeof c);
    cr_assert_eq(qat_fortunes_load(spec, dir, val_permille, &c), status, "%s: wrong status: %s", spec,
                 qat_error_message());
    cr_assert_null(c.train.bytes);
    cr_assert_null(c.val.bytes);
    cr_assert_null(c.files);
    cr_assert_eq(c.nfiles, 0);
    assert_error_mentions(mention1);
    if (mention2) assert_error_mentions(mention2);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

/* Splits a stream back into its entries (each ends at a "%\n" line). */
typedef struct entry_list {
    char **text;
    int n;
} entry_list;

static entry_list stream_entries(const qat_text_set *set)
{
    entry_list l = {calloc(set->entries + 1, sizeof(char *)), 0};
    size_t start = 0;
    for (size_t i = 0; i < set->len; i++) {
        bool line_start = i == 0 || set->bytes[i - 1] == '\n';
        if (line_start && set->bytes[i] == '%' && i + 1 < set->len && set->bytes[i + 1] == '\n') {
            cr_assert_lt(l.n, (int)set->entries, "more separators than entries");
            l.text[l.n] = strndup((const char *)set->bytes + start, i - start);
            l.n++;
            start = i + 2;
        }
    }
    cr_assert_eq(start, set->len, "stream does not end with a separator");
    cr_assert_eq(l.n, (int)set->entries);
    return l;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void entries_sort(entry_list *l) { qsort(l->text, (size_t)l->n, sizeof *l->text, cmp_str); }

static void entries_free(entry_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->text[i]);
    free(l->text);
}

static void assert_same_entries(const entry_list *a, const entry_list *b)
{
    cr_assert_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) cr_assert_str_eq(a->text[i], b->text[i]);
}

Test(fortunes, fnv1a64_matches_published_test_vectors)
{
    cr_assert_eq(qat_fnv1a64("", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(qat_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(qat_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
    /* 0x85944171f73967e8 % 1000 = 968: in validation above 968 per mille. */
    cr_assert_not(qat_text_entry_is_val((const uint8_t *)"foobar", 6, 968));
    cr_assert(qat_text_entry_is_val((const uint8_t *)"foobar", 6, 969));
    cr_assert_not(qat_text_entry_is_val((const uint8_t *)"foobar", 6, 0));
}

Test(fortunes, spec_prefix_picks_the_text_path)
{
    cr_assert(qat_text_spec_is_fortunes("fortunes:tech"));
    cr_assert(qat_text_spec_is_fortunes("fortunes:art+zippy"));
    cr_assert(qat_text_spec_is_fortunes("fortunes:"));
    cr_assert_not(qat_text_spec_is_fortunes("fashion-mnist"));
    cr_assert_not(qat_text_spec_is_fortunes("fortune:tech"));
    cr_assert_not(qat_text_spec_is_fortunes("fortunes"));
    cr_assert_not(qat_text_spec_is_fortunes(""));
    cr_assert_not(qat_text_spec_is_fortunes(NULL));
}

Test(fortunes, leading_text_empty_entries_and_whitespace_entries)
{
    write_file(test_tmpdir, "a",
               "before the first separator\n"
               "%\n"
               "%\n"
               "one\ntwo lines\n"
               "%\n"
               "  \n\t\n"
               "%\n"
               "\n  indented, with blank lines around\n\n"
               "%\n");
    qat_text_corpus c;
    load_ok("fortunes:a", test_tmpdir, 0, &c);
    assert_stream(&c.train,
                  "before the first separator\n%\n"
                  "one\ntwo lines\n%\n"
                  "\n  indented, with blank lines around\n\n%\n",
                  3);
    assert_stream(&c.val, "", 0);
    cr_assert_eq(c.nfiles, 1);
    cr_assert_str_eq(c.files[0], "a");
    cr_assert_str_eq(c.spec, "fortunes:a");
    cr_assert_str_eq(c.dir, test_tmpdir);
    qat_text_corpus_free(&c);
    cr_assert_null(c.train.bytes);
    cr_assert_null(c.files);
}

Test(fortunes, percent_inside_a_line_is_not_a_separator)
{
    write_file(test_tmpdir, "a",
               "50% off\n"
               "%%\n"
               " %\n"
               "% \n"
               "%x\n"
               "100%\n"
               "%\n"
               "second\n");
    qat_text_corpus c;
    load_ok("fortunes:a", test_tmpdir, 0, &c);
    assert_stream(&c.train, "50% off\n%%\n %\n% \n%x\n100%\n%\nsecond\n%\n", 2);
    qat_text_corpus_free(&c);
}

Test(fortunes, missing_final_newline_gets_one_and_hashes_like_the_same_entry_elsewhere)
{
    write_file(test_tmpdir, "a", "first\n%\nlast line without newline");
    write_file(test_tmpdir, "b", "last line without newline\n%\nend\n%");
    qat_text_corpus c;
    load_ok("fortunes:a+b", test_tmpdir, 0, &c);
    assert_stream(&c.train, "first\n%\nlast line without newline\n%\nlast line without newline\n%\nend\n%\n", 4);
    qat_text_corpus_free(&c);

    /* Both copies go to whichever side the newline-terminated text hashes
     * to; file c holds an entry that stays in training either way. */
    const char *text = "last line without newline\n";
    const char *both = "last line without newline\n%\nlast line without newline\n%\n";
    uint32_t h = (uint32_t)(qat_fnv1a64(text, strlen(text)) % 1000);
    cr_assert_lt(h, 999);
    char keep[32];
    int k = 0;
    do snprintf(keep, sizeof keep, "keep %d\n", k++);
    while (qat_fnv1a64(keep, strlen(keep)) % 1000 <= h);
    write_file(test_tmpdir, "c", keep);
    load_ok("fortunes:a+b+c", test_tmpdir, h + 1, &c);
    cr_assert(memmem(c.val.bytes, c.val.len, both, strlen(both)));
    qat_text_corpus_free(&c);
    load_ok("fortunes:a+b+c", test_tmpdir, h, &c);
    cr_assert(memmem(c.train.bytes, c.train.len, both, strlen(both)));
    qat_text_corpus_free(&c);
}

Test(fortunes, crlf_separators_split_and_crlf_text_is_kept)
{
    write_file(test_tmpdir, "a", "one\r\ntwo\r\n%\r\nthree\r\n%\r\n \r\n%\r\nfour\r\n%\r");
    qat_text_corpus c;
    load_ok("fortunes:a", test_tmpdir, 0, &c);
    /* "%\r" at the very end is a separator without its newline. */
    assert_stream(&c.train, "one\r\ntwo\r\n%\nthree\r\n%\nfour\r\n%\n", 3);
    qat_text_corpus_free(&c);
}

Test(fortunes, files_are_read_in_name_order_whatever_the_spec_order)
{
    write_file(test_tmpdir, "b", "from b\n");
    write_file(test_tmpdir, "a", "from a\n");
    write_file(test_tmpdir, "B", "from B\n");
    qat_text_corpus c;
    load_ok("fortunes:b+a+B", test_tmpdir, 0, &c);
    assert_stream(&c.train, "from B\n%\nfrom a\n%\nfrom b\n%\n", 3);
    cr_assert_eq(c.nfiles, 3);
    cr_assert_str_eq(c.files[0], "B");
    cr_assert_str_eq(c.files[1], "a");
    cr_assert_str_eq(c.files[2], "b");
    qat_text_corpus_free(&c);
}

#define SPLIT_N 400

static void entry_text(char *buf, size_t size, int i)
{
    snprintf(buf, size, "entry %d\nsays %d%%\n", i, i * 37 % 101);
}

/* Files "a" and "b" holding entries [lo_a, hi_a) and [lo_b, hi_b). */
static void write_split_corpus(const char *dir, int lo_a, int hi_a, int lo_b, int hi_b)
{
    qat_strbuf a = {0}, b = {0};
    char buf[64];
    for (int i = lo_a; i < hi_a; i++) {
        entry_text(buf, sizeof buf, i);
        qat_strbuf_printf(&a, "%s%%\n", buf);
    }
    for (int i = lo_b; i < hi_b; i++) {
        entry_text(buf, sizeof buf, i);
        qat_strbuf_printf(&b, "%s%%\n", buf);
    }
    write_file(dir, "a", a.data);
    write_file(dir, "b", b.data);
    qat_strbuf_free(&a);
    qat_strbuf_free(&b);
}

Test(fortunes, split_is_by_entry_hash_and_keeps_file_order_within_each_side)
{
    write_split_corpus(test_tmpdir, 0, SPLIT_N / 2, SPLIT_N / 2, SPLIT_N);
    qat_text_corpus c;
    load_ok("fortunes:all", test_tmpdir, 300, &c);
    qat_strbuf want_train = {0}, want_val = {0};
    uint32_t ntrain = 0, nval = 0;
    char buf[64];
    for (int i = 0; i < SPLIT_N; i++) {
        entry_text(buf, sizeof buf, i);
        bool val = qat_fnv1a64(buf, strlen(buf)) % 1000 < 300;
        qat_strbuf_printf(val ? &want_val : &want_train, "%s%%\n", buf);
        ++*(val ? &nval : &ntrain);
    }
    /* About 30% of 400, and neither side trivially empty. */
    cr_assert(nval > 80 && nval < 160, "%u validation entries", nval);
    assert_stream(&c.train, want_train.data, ntrain);
    assert_stream(&c.val, want_val.data, nval);
    qat_strbuf_free(&want_train);
    qat_strbuf_free(&want_val);
    qat_text_corpus_free(&c);

    /* A larger share only moves entries into validation. */
    qat_text_corpus more;
    load_ok("fortunes:all", test_tmpdir, 600, &more);
    entry_list v30 = stream_entries(&c.val), v60 = stream_entries(&more.val);
    cr_assert_gt(v60.n, v30.n);
    for (int i = 0; i < v30.n; i++) {
        bool found = false;
        for (int k = 0; k < v60.n && !found; k++) found = strcmp(v30.text[i], v60.text[k]) == 0;
        cr_assert(found, "entry \"%s\" left validation when the share grew", v30.text[i]);
    }
    entries_free(&v30);
    entries_free(&v60);
    qat_text_corpus_free(&more);
}

Test(fortunes, split_is_stable_when_entries_move_between_files_and_duplicates_stay_together)
{
    const char *one = make_subdir("one"), *two = make_subdir("two");
    write_split_corpus(one, 0, SPLIT_N / 2, SPLIT_N / 2, SPLIT_N);
    /* The same entries, the halves swapped between the files, plus a copy of
     * a few entries in the other file. */
    write_split_corpus(two, SPLIT_N / 2, SPLIT_N, 0, SPLIT_N / 2 + 20);
    qat_text_corpus c1, c2;
    load_ok("fortunes:all", one, 200, &c1);
    load_ok("fortunes:all", two, 200, &c2);
    entry_list t1 = stream_entries(&c1.train), v1 = stream_entries(&c1.val);
    entry_list t2 = stream_entries(&c2.train), v2 = stream_entries(&c2.val);
    cr_assert_eq(t1.n + v1.n, SPLIT_N);
    cr_assert_eq(t2.n + v2.n, SPLIT_N + 20);
    /* Without the 20 duplicates, the same entries fall on the same side. */
    entries_sort(&t1);
    entries_sort(&v1);
    entries_sort(&t2);
    entries_sort(&v2);
    entry_list t2u = {calloc((size_t)t2.n, sizeof(char *)), 0}, v2u = {calloc((size_t)v2.n, sizeof(char *)), 0};
    int dup_train = 0, dup_val = 0;
    for (int i = 0; i < t2.n; i++)
        if (i > 0 && strcmp(t2.text[i], t2.text[i - 1]) == 0) dup_train++;
        else t2u.text[t2u.n++] = strdup(t2.text[i]);
    for (int i = 0; i < v2.n; i++)
        if (i > 0 && strcmp(v2.text[i], v2.text[i - 1]) == 0) dup_val++;
        else v2u.text[v2u.n++] = strdup(v2.text[i]);
    cr_assert_eq(dup_train + dup_val, 20, "a duplicated entry landed on both sides");
    assert_same_entries(&t1, &t2u);
    assert_same_entries(&v1, &v2u);
    entries_free(&t1);
    entries_free(&v1);
    entries_free(&t2);
    entries_free(&v2);
    entries_free(&t2u);
    entries_free(&v2u);
    qat_text_corpus_free(&c1);
    qat_text_corpus_free(&c2);
}

/* Each file of a fake install holds two entries naming it; plus what the
 * loader must skip: strfile indexes, Debian's .u8 links, a subdirectory and
 * a hidden file. */
static const char *const general[] = {"art", "zippy"};

static void write_fake_install(const char *dir)
{
    char text[128];
    for (size_t i = 0; i < QAT_ARRAY_LEN(tech); i++) {
        snprintf(text, sizeof text, "%s one\n%%\n%s two\n%%\n", tech[i], tech[i]);
        write_file(dir, tech[i], text);
    }
    for (size_t i = 0; i < QAT_ARRAY_LEN(general); i++) {
        snprintf(text, sizeof text, "%s one\n%%\n%s two\n%%\n", general[i], general[i]);
        write_file(dir, general[i], text);
    }
    write_file(dir, "art.dat", "index bytes\n");
    write_file(dir, ".hidden", "hidden\n");
    char path[1024], target[1024];
    snprintf(path, sizeof path, "%s/art.u8", dir);
    snprintf(target, sizeof target, "%s/art", dir);
    cr_assert_eq(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/linked", dir);
    cr_assert_eq(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/off", dir);
    cr_assert_eq(mkdir(path, 0777), 0);
    write_file(path, "offensive", "offensive\n");
}

static void assert_files(const qat_text_corpus *c, const char *const *names, int n)
{
    cr_assert_eq(c->nfiles, n, "%s: %d files, expected %d", c->spec, c->nfiles, n);
    qat_strbuf want = {0};
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(c->files[i], names[i]);
        qat_strbuf_printf(&want, "%s one\n%%\n%s two\n%%\n", names[i], names[i]);
    }
    assert_stream(&c->train, want.data, 2 * (uint32_t)n);
    qat_strbuf_free(&want);
}

Test(fortunes, domain_specs_select_tech_general_all_and_named_files)
{
    write_fake_install(test_tmpdir);
    qat_text_corpus c;
    load_ok("fortunes:tech", test_tmpdir, 0, &c);
    assert_files(&c, tech, 5);
    qat_text_corpus_free(&c);

    load_ok("fortunes:general", test_tmpdir, 0, &c);
    assert_files(&c, general, 2);
    qat_text_corpus_free(&c);

    load_ok("fortunes:all", test_tmpdir, 0, &c);
    const char *all[] = {"art", "computers", "debian", "linux", "linuxcookie", "perl", "zippy"};
    assert_files(&c, all, 7);
    qat_text_corpus_free(&c);

    load_ok("fortunes:zippy+linux", test_tmpdir, 0, &c);
    const char *named[] = {"linux", "zippy"};
    assert_files(&c, named, 2);
    qat_text_corpus_free(&c);
}

Test(fortunes, general_is_every_file_but_tech_even_without_tech_files)
{
    write_file(test_tmpdir, "solo", "alone\n");
    qat_text_corpus c;
    load_ok("fortunes:general", test_tmpdir, 0, &c);
    assert_stream(&c.train, "alone\n%\n", 1);
    qat_text_corpus_free(&c);
}

Test(fortunes, bad_specs_are_invalid_and_named)
{
    write_fake_install(test_tmpdir);
    load_fails("fashion-mnist", test_tmpdir, 100, QAT_ERR_INVALID, "\"fashion-mnist\"", "fortunes:tech");
    load_fails("fortunes:", test_tmpdir, 100, QAT_ERR_INVALID, "\"fortunes:\"", "fortunes:NAME+NAME");
    load_fails("fortunes:art++zippy", test_tmpdir, 100, QAT_ERR_INVALID, "fortunes:art++zippy", "empty");
    load_fails("fortunes:art+", test_tmpdir, 100, QAT_ERR_INVALID, "fortunes:art+", "empty");
    load_fails("fortunes:../etc/passwd", test_tmpdir, 100, QAT_ERR_INVALID, "\"../etc/passwd\"",
               "not a file name");
    load_fails("fortunes:..", test_tmpdir, 100, QAT_ERR_INVALID, "\"..\"", "not a file name");
    load_fails("fortunes:art+zippy+art", test_tmpdir, 100, QAT_ERR_INVALID, "\"art\" twice", NULL);
    load_fails("fortunes:art.dat", test_tmpdir, 100, QAT_ERR_INVALID, "/art.dat", "not a fortune text file");
    load_fails("fortunes:art.u8", test_tmpdir, 100, QAT_ERR_INVALID, "/art.u8", "not a fortune text file");
    load_fails("fortunes:off", test_tmpdir, 100, QAT_ERR_INVALID, "/off", "not a fortune text file");
    load_fails("fortunes:Tech", test_tmpdir, 100, QAT_ERR_IO, "/Tech", "\"fortunes:Tech\"");
    char longspec[300];
    memset(longspec, 'x', sizeof longspec - 1);
    memcpy(longspec, "fortunes:", 9);
    longspec[sizeof longspec - 1] = '\0';
    load_fails(longspec, test_tmpdir, 100, QAT_ERR_INVALID, "too long", NULL);
    load_fails("fortunes:all", test_tmpdir, 1000, QAT_ERR_INVALID, "fortunes:all", "1000 per mille");
}

Test(fortunes, missing_named_file_is_an_io_error_naming_it_and_the_spec)
{
    write_fake_install(test_tmpdir);
    char path[1024];
    snprintf(path, sizeof path, "%s/nosuch", test_tmpdir);
    load_fails("fortunes:art+nosuch", test_tmpdir, 100, QAT_ERR_IO, path, "\"fortunes:art+nosuch\"");
}

Test(fortunes, tech_with_a_file_missing_names_it_with_install_hint)
{
    write_fake_install(test_tmpdir);
    char path[1024];
    snprintf(path, sizeof path, "%s/perl", test_tmpdir);
    cr_assert_eq(unlink(path), 0);
    load_fails("fortunes:tech", test_tmpdir, 100, QAT_ERR_IO, path, "apt-get install fortunes");
    /* The other domains do not need it. */
    qat_text_corpus c;
    load_ok("fortunes:all", test_tmpdir, 0, &c);
    cr_assert_eq(c.nfiles, 6);
    qat_text_corpus_free(&c);
}

Test(fortunes, missing_directory_or_a_file_instead_is_an_io_error_with_install_hint)
{
    const char *missing = test_tmp_path("nowhere");
    load_fails("fortunes:all", missing, 100, QAT_ERR_IO, missing, "apt-get install fortunes");
    write_file(test_tmpdir, "plain", "text\n");
    const char *plain = test_tmp_path("plain");
    load_fails("fortunes:all", plain, 100, QAT_ERR_IO, plain, "not a directory");
}

Test(fortunes, selection_without_entries_is_invalid)
{
    write_file(test_tmpdir, "blank", "%\n%\n  \n%\n\n");
    write_file(test_tmpdir, "empty", "");
    load_fails("fortunes:blank+empty", test_tmpdir, 100, QAT_ERR_INVALID, "\"fortunes:blank+empty\"",
               "no entries");
    const char *empty_dir = make_subdir("nothing");
    load_fails("fortunes:all", empty_dir, 100, QAT_ERR_INVALID, "fortunes:all", "no entries");
}

Test(fortunes, selection_with_every_entry_in_validation_is_invalid)
{
    /* Find a short entry that 999 per mille sends to validation. */
    char text[32];
    int i = 0;
    do snprintf(text, sizeof text, "e%d\n", i++);
    while (qat_fnv1a64(text, strlen(text)) % 1000 >= 999);
    write_file(test_tmpdir, "one", text);
    load_fails("fortunes:one", test_tmpdir, 999, QAT_ERR_INVALID, "fortunes:one", "none are left for training");
}

Test(fortunes, null_dir_uses_environment_variable_when_set_and_non_empty)
{
    write_file(test_tmpdir, "a", "from env\n");
    cr_assert_eq(setenv(QAT_FORTUNES_DIR_ENV, test_tmpdir, 1), 0);
    qat_text_corpus c;
    load_ok("fortunes:a", NULL, 0, &c);
    cr_assert_str_eq(c.dir, test_tmpdir);
    assert_stream(&c.train, "from env\n%\n", 1);
    qat_text_corpus_free(&c);

    /* Empty means unset: the default directory, whether installed or not. */
    cr_assert_eq(setenv(QAT_FORTUNES_DIR_ENV, "", 1), 0);
    qat_status st = qat_fortunes_load("fortunes:a", NULL, 0, &c);
    if (st == QAT_OK) cr_assert_str_eq(c.dir, QAT_FORTUNES_DEFAULT_DIR);
    else assert_error_mentions(QAT_FORTUNES_DEFAULT_DIR);
    qat_text_corpus_free(&c);
}

/* A set whose byte at offset i is distinct for i < 251, so a window's first
 * byte tells where it starts. */
static qat_text_set make_set(size_t len)
{
    qat_text_set s = {malloc(len ? len : 1), len, 1};
    for (size_t i = 0; i < len; i++) s.bytes[i] = (uint8_t)(i % 251);
    return s;
}

Test(fortunes, batch_windows_come_from_the_stream_at_qat_rng_below_offsets)
{
    const int batch = 9, ctx = 13;
    qat_text_set s = make_set(200);
    qat_rng rng = qat_rng_init(42, 7), replay = rng;
    int32_t x[9 * 13], y[9 * 13];
    qat_text_batch_random(&s, &rng, batch, ctx, x, y);
    for (int b = 0; b < batch; b++) {
        uint32_t start = qat_rng_below(&replay, (uint32_t)(s.len - (size_t)ctx));
        for (int t = 0; t < ctx; t++) {
            cr_assert_eq(x[b * ctx + t], s.bytes[start + (uint32_t)t], "b %d t %d", b, t);
            cr_assert_eq(y[b * ctx + t], s.bytes[start + (uint32_t)t + 1], "b %d t %d", b, t);
        }
    }
    /* The generator advanced by exactly one draw per window. */
    cr_assert_eq(qat_rng_u32(&rng), qat_rng_u32(&replay));
    free(s.bytes);
}

Test(fortunes, batch_is_deterministic_for_a_seed_and_differs_across_seeds)
{
    const int batch = 16, ctx = 32;
    qat_text_set s = make_set(5000);
    int32_t x1[16 * 32], y1[16 * 32], x2[16 * 32], y2[16 * 32];
    qat_rng a = qat_rng_init(3, 0), b = qat_rng_init(3, 0), c = qat_rng_init(4, 0);
    qat_text_batch_random(&s, &a, batch, ctx, x1, y1);
    qat_text_batch_random(&s, &b, batch, ctx, x2, y2);
    cr_assert_arr_eq(x1, x2, sizeof x1);
    cr_assert_arr_eq(y1, y2, sizeof y1);
    qat_text_batch_random(&s, &c, batch, ctx, x2, y2);
    cr_assert_neq(memcmp(x1, x2, sizeof x1), 0);
    free(s.bytes);
}

Test(fortunes, batch_starts_cover_every_offset_up_to_len_minus_ctx_minus_one)
{
    /* len = ctx + 4: starts 0..3, the last window ending on the last byte. */
    const int ctx = 6;
    qat_text_set s = make_set(10);
    qat_rng rng = qat_rng_init(1, 2);
    int seen[10] = {0};
    int32_t x[64 * 6], y[64 * 6];
    qat_text_batch_random(&s, &rng, 64, ctx, x, y);
    for (int b = 0; b < 64; b++) {
        cr_assert_lt(x[b * ctx], 4);
        cr_assert_eq(y[b * ctx + ctx - 1], x[b * ctx] + ctx);
        seen[x[b * ctx]]++;
    }
    for (int i = 0; i < 4; i++) cr_assert_gt(seen[i], 0, "start %d never drawn", i);
    /* ctx = len - 1 leaves one window, the whole set. */
    qat_text_batch_random(&s, &rng, 2, 9, x, y);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 9; t++) {
            cr_assert_eq(x[b * 9 + t], t);
            cr_assert_eq(y[b * 9 + t], t + 1);
        }
    free(s.bytes);
}

Test(fortunes, evaluation_windows_predict_every_byte_after_the_first_exactly_once)
{
    const size_t lens[] = {0, 1, 2, 3, 8, 9, 10, 17, 25, 26, 27, 300, 1001};
    const int ctxs[] = {1, 3, 8, 25};
    for (size_t li = 0; li < QAT_ARRAY_LEN(lens); li++)
        for (size_t ci = 0; ci < QAT_ARRAY_LEN(ctxs); ci++) {
            size_t len = lens[li];
            int ctx = ctxs[ci];
            qat_text_set s = make_set(len);
            uint32_t n = qat_text_window_count(&s, ctx);
            size_t expect = len < 2 ? 0 : (len - 1 + (size_t)ctx - 1) / (size_t)ctx;
            cr_assert_eq(n, expect, "len %zu ctx %d", len, ctx);
            int *hits = calloc(len + 1, sizeof *hits);
            int32_t *x = malloc((size_t)ctx * sizeof *x), *y = malloc((size_t)ctx * sizeof *y);
            size_t total = 0;
            for (uint32_t w = 0; w < n; w++) {
                for (int t = 0; t < ctx; t++) x[t] = y[t] = -1;
                int valid = qat_text_window(&s, w, ctx, x, y);
                cr_assert(valid > 0 && valid <= ctx);
                cr_assert(w + 1 == n || valid == ctx, "only the last window may be partial");
                for (int t = 0; t < valid; t++) {
                    size_t target = (size_t)w * (size_t)ctx + (size_t)t + 1;
                    cr_assert_lt(target, len);
                    cr_assert_eq(x[t], s.bytes[target - 1]);
                    cr_assert_eq(y[t], s.bytes[target]);
                    hits[target]++;
                }
                for (int t = valid; t < ctx; t++) cr_assert(x[t] == 0 && y[t] == 0, "padding not zero");
                total += (size_t)valid;
            }
            cr_assert_eq(total, len ? len - 1 : 0);
            cr_assert_eq(hits[0], 0);
            for (size_t i = 1; i < len; i++) cr_assert_eq(hits[i], 1, "len %zu ctx %d byte %zu", len, ctx, i);
            free(hits);
            free(x);
            free(y);
            free(s.bytes);
        }
}

/* The real corpus from Debian's fortunes package, when installed. */
static const char *real_dir_or_skip(void)
{
    const char *env = getenv(QAT_FORTUNES_DIR_ENV);
    const char *dir = env && *env ? env : QAT_FORTUNES_DEFAULT_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        cr_skip_test("fortunes not installed at %s (apt-get install fortunes or set " QAT_FORTUNES_DIR_ENV ")",
                     dir);
    return dir;
}

static bool only_whitespace(const char *s)
{
    return s[strspn(s, " \t\r\n\v\f")] == '\0';
}

Test(fortunes, real_corpus_tech_and_general_are_disjoint_non_empty_and_make_up_all)
{
    const char *dir = real_dir_or_skip();
    qat_text_corpus t, g, a;
    load_ok("fortunes:tech", dir, QAT_FORTUNES_DEFAULT_VAL_PERMILLE, &t);
    load_ok("fortunes:general", dir, QAT_FORTUNES_DEFAULT_VAL_PERMILLE, &g);
    load_ok("fortunes:all", dir, QAT_FORTUNES_DEFAULT_VAL_PERMILLE, &a);
    cr_assert_eq(t.nfiles, 5);
    cr_assert_gt(g.nfiles, 0);
    cr_assert_eq(t.nfiles + g.nfiles, a.nfiles);
    for (int i = 0; i < t.nfiles; i++)
        for (int k = 0; k < g.nfiles; k++) cr_assert_str_neq(t.files[i], g.files[k]);
    for (int i = 0; i < a.nfiles; i++) {
        cr_assert_null(strchr(a.files[i], '.'), "%s should have been skipped", a.files[i]);
        if (i) cr_assert_lt(strcmp(a.files[i - 1], a.files[i]), 0);
    }
    const qat_text_corpus *parts[] = {&t, &g};
    for (int p = 0; p < 2; p++) {
        const qat_text_corpus *c = parts[p];
        cr_assert_gt(c->train.entries, 100, "%s", c->spec);
        cr_assert_gt(c->val.entries, 10, "%s", c->spec);
        /* FNV-1a picks about val_permille of the entries. */
        double share = (double)c->val.entries / (c->train.entries + c->val.entries);
        cr_assert(share > 0.07 && share < 0.13, "%s: validation share %.3f", c->spec, share);
        entry_list e = stream_entries(&c->train);
        for (int i = 0; i < e.n; i++) cr_assert_not(only_whitespace(e.text[i]));
        entries_free(&e);
    }
    /* The split is by entry, so the domains' splits add up to all's. */
    cr_assert_eq(t.train.entries + g.train.entries, a.train.entries);
    cr_assert_eq(t.val.entries + g.val.entries, a.val.entries);
    cr_assert_eq(t.train.len + g.train.len, a.train.len);
    cr_assert_eq(t.val.len + g.val.len, a.val.len);
    qat_text_corpus_free(&t);
    qat_text_corpus_free(&g);
    qat_text_corpus_free(&a);
}
