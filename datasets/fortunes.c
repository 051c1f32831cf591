#include "datasets/fortunes.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"

#define INSTALL_HINT "install it with `apt-get install fortunes` or set " QAT_FORTUNES_DIR_ENV
#define SPEC_FORMS                                                                                 \
    "expected " QAT_FORTUNES_SPEC_PREFIX "tech, " QAT_FORTUNES_SPEC_PREFIX                         \
    "general, " QAT_FORTUNES_SPEC_PREFIX "all or " QAT_FORTUNES_SPEC_PREFIX "NAME+NAME+..."

/* The files of fortunes:tech; fortunes:general is everything else. */
static const char *const tech_files[] = {"computers", "debian", "linux", "linuxcookie", "perl"};

typedef struct name_list {
    char **names;
    int n, cap;
} name_list;

static void names_add(name_list *l, const char *name, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = qat_xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    char *s = qat_xmalloc(len + 1);
    memcpy(s, name, len);
    s[len] = '\0';
    l->names[l->n++] = s;
}

static bool names_contain_n(const name_list *l, const char *name, size_t len)
{
    for (int i = 0; i < l->n; i++)
        if (strlen(l->names[i]) == len && memcmp(l->names[i], name, len) == 0) return true;
    return false;
}

static bool names_contain(const name_list *l, const char *name)
{
    return names_contain_n(l, name, strlen(name));
}

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Whether `name` is a fortune text file of `dir`: the .dat indexes strfile
 * writes and the .u8 links Debian adds would duplicate or corrupt the text,
 * and a subdirectory (e.g. off/) is another collection. lstat, so a link is
 * not followed into a file counted twice. */
static bool is_corpus_file(const char *dir, const char *name)
{
    if (name[0] == '.' || ends_with(name, ".dat") || ends_with(name, ".u8")) return false;
    qat_strbuf path = {0};
    qat_strbuf_printf(&path, "%s/%s", dir, name);
    struct stat sb;
    bool ok = lstat(path.data, &sb) == 0 && S_ISREG(sb.st_mode);
    qat_strbuf_free(&path);
    return ok;
}

/* The corpus files of `dir`, sorted with strcmp. */
static qat_status list_corpus_files(const char *dir, name_list *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return qat_error_set(QAT_ERR_IO, "%s: cannot list the fortunes directory: %s", dir,
                             strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (is_corpus_file(dir, e->d_name)) names_add(out, e->d_name, strlen(e->d_name));
    closedir(d);
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_names);
    return QAT_OK;
}

typedef enum spec_kind { SPEC_TECH, SPEC_GENERAL, SPEC_ALL, SPEC_NAMED } spec_kind;

/* Checks the form of `spec` (before the directory is looked at, so a typo is
 * reported as such even where the corpus is not installed); for a named
 * list, fills `named` in the order given. */
static qat_status parse_spec(const char *spec, spec_kind *kind, name_list *named)
{
    if (!qat_text_spec_is_fortunes(spec))
        return qat_error_set(QAT_ERR_INVALID, "dataset \"%s\": not a fortunes spec (%s)", spec, SPEC_FORMS);
    const char *rest = spec + strlen(QAT_FORTUNES_SPEC_PREFIX);
    if (strcmp(rest, "tech") == 0) *kind = SPEC_TECH;
    else if (strcmp(rest, "general") == 0) *kind = SPEC_GENERAL;
    else if (strcmp(rest, "all") == 0) *kind = SPEC_ALL;
    else *kind = SPEC_NAMED;
    if (*kind != SPEC_NAMED) return QAT_OK;
    if (!*rest)
        return qat_error_set(QAT_ERR_INVALID, "dataset \"%s\": no domain or file names (%s)", spec,
                             SPEC_FORMS);
    for (const char *p = rest;;) {
        size_t len = strcspn(p, "+");
        if (len == 0)
            return qat_error_set(QAT_ERR_INVALID, "dataset \"%s\": empty file name in the list (%s)",
                                 spec, SPEC_FORMS);
        if (memchr(p, '/', len) || (len <= 2 && p[0] == '.' && (len == 1 || p[1] == '.')))
            return qat_error_set(QAT_ERR_INVALID,
                                 "dataset \"%s\": \"%.*s\" is not a file name (names are files in the "
                                 "fortunes directory)",
                                 spec, (int)len, p);
        if (names_contain_n(named, p, len))
            return qat_error_set(QAT_ERR_INVALID, "dataset \"%s\": names \"%.*s\" twice", spec, (int)len,
                                 p);
        names_add(named, p, len);
        if (!p[len]) break;
        p += len + 1;
    }
    return QAT_OK;
}

/* The files `kind` selects from the directory's corpus files, in name
 * order. */
static qat_status select_files(const char *spec, const char *dir, spec_kind kind, const name_list *named,
                               const name_list *available, name_list *out)
{
    switch (kind) {
    case SPEC_TECH:
        for (size_t i = 0; i < QAT_ARRAY_LEN(tech_files); i++)
            if (!names_contain(available, tech_files[i]))
                return qat_error_set(QAT_ERR_IO, "%s/%s: not found (a file of dataset \"%s\"); %s", dir,
                                     tech_files[i], spec, INSTALL_HINT);
        for (size_t i = 0; i < QAT_ARRAY_LEN(tech_files); i++)
            names_add(out, tech_files[i], strlen(tech_files[i]));
        break;
    case SPEC_GENERAL:
    case SPEC_ALL:
        for (int i = 0; i < available->n; i++) {
            bool tech = false;
            for (size_t k = 0; k < QAT_ARRAY_LEN(tech_files); k++)
                tech = tech || strcmp(available->names[i], tech_files[k]) == 0;
            if (kind == SPEC_ALL || !tech) names_add(out, available->names[i], strlen(available->names[i]));
        }
        break;
    case SPEC_NAMED:
        for (int i = 0; i < named->n; i++) {
            const char *name = named->names[i];
            if (names_contain(available, name)) {
                names_add(out, name, strlen(name));
                continue;
            }
            qat_strbuf path = {0};
            qat_strbuf_printf(&path, "%s/%s", dir, name);
            struct stat sb;
            qat_status st;
            if (lstat(path.data, &sb) != 0)
                st = qat_error_set(QAT_ERR_IO, "%s: not found (named by dataset \"%s\"): %s", path.data,
                                   spec, strerror(errno));
            else
                st = qat_error_set(QAT_ERR_INVALID,
                                   "%s: not a fortune text file (named by dataset \"%s\"; .dat indexes, "
                                   ".u8 links and non-regular files are not)",
                                   path.data, spec);
            qat_strbuf_free(&path);
            return st;
        }
        break;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_names);
    return QAT_OK;
}

bool qat_text_entry_is_val(const uint8_t *entry, size_t len, uint32_t val_permille)
{
    return qat_fnv1a64(entry, len) % 1000 < val_permille;
}

static bool only_whitespace(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r' || p[i] == '\v' || p[i] == '\f'))
            return false;
    return true;
}

/* Appends one entry and its separator to the split its bytes choose. The
 * entry is assembled in `scratch` first because a missing final newline is
 * part of the hashed bytes: the same text at the end of a file and in the
 * middle of another must hash alike. */
static void add_entry(const uint8_t *p, size_t n, uint32_t val_permille, qat_strbuf *scratch,
                      qat_strbuf *train, qat_strbuf *val, uint32_t *ntrain, uint32_t *nval)
{
    if (only_whitespace(p, n)) return;
    qat_strbuf_clear(scratch);
    qat_strbuf_append(scratch, (const char *)p, n);
    if (p[n - 1] != '\n') qat_strbuf_putc(scratch, '\n');
    bool to_val = qat_text_entry_is_val((const uint8_t *)scratch->data, scratch->len, val_permille);
    qat_strbuf *dst = to_val ? val : train;
    qat_strbuf_append(dst, scratch->data, scratch->len);
    qat_strbuf_append(dst, "%\n", 2);
    QAT_ASSERT_MSG(*(to_val ? nval : ntrain) < UINT32_MAX, "too many fortune entries");
    ++*(to_val ? nval : ntrain);
}

/* Splits one file's text into entries at separator lines: "%" alone, with
 * "\n", "\r\n" or the end of the file after it. */
static void split_entries(const uint8_t *text, size_t len, uint32_t val_permille, qat_strbuf *scratch,
                          qat_strbuf *train, qat_strbuf *val, uint32_t *ntrain, uint32_t *nval)
{
    size_t entry_start = 0, line = 0;
    while (line < len) {
        const uint8_t *nl = memchr(text + line, '\n', len - line);
        size_t next = nl ? (size_t)(nl - text) + 1 : len;
        size_t body = next - line - (nl ? 1 : 0); /* the line without its '\n' */
        bool sep = text[line] == '%' && (body == 1 || (body == 2 && text[line + 1] == '\r'));
        if (sep) {
            add_entry(text + entry_start, line - entry_start, val_permille, scratch, train, val, ntrain,
                      nval);
            entry_start = next;
        }
        line = next;
    }
    add_entry(text + entry_start, len - entry_start, val_permille, scratch, train, val, ntrain, nval);
}

static void set_take(qat_text_set *set, qat_strbuf *sb, uint32_t entries)
{
    set->bytes = (uint8_t *)sb->data; /* now owned by set */
    set->len = sb->len;
    set->entries = entries;
    memset(sb, 0, sizeof *sb);
}

qat_status qat_fortunes_load(const char *spec, const char *dir, uint32_t val_permille, qat_text_corpus *out)
{
    QAT_ASSERT(spec && out);
    memset(out, 0, sizeof *out);
    if (strlen(spec) >= sizeof out->spec)
        return qat_error_set(QAT_ERR_INVALID, "dataset spec is too long (%zu bytes, at most %zu)",
                             strlen(spec), sizeof out->spec - 1);
    if (val_permille >= 1000)
        return qat_error_set(QAT_ERR_INVALID,
                             "dataset \"%s\": validation share %u per mille leaves nothing for training "
                             "(expected 0-999)",
                             spec, val_permille);
    if (!dir) {
        const char *env = getenv(QAT_FORTUNES_DIR_ENV);
        dir = env && *env ? env : QAT_FORTUNES_DEFAULT_DIR;
    }
    if (strlen(dir) >= sizeof out->dir)
        return qat_error_set(QAT_ERR_INVALID, "fortunes directory path is too long (%zu bytes)", strlen(dir));

    spec_kind kind;
    name_list named = {0}, available = {0}, selected = {0};
    qat_strbuf path = {0}, scratch = {0}, train = {0}, val = {0};
    uint32_t ntrain = 0, nval = 0;
    qat_status st = parse_spec(spec, &kind, &named);
    if (st != QAT_OK) goto out;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        st = qat_error_set(QAT_ERR_IO, "%s: fortunes directory not found (%s); %s", dir, strerror(errno),
                           INSTALL_HINT);
        goto out;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st = qat_error_set(QAT_ERR_IO, "%s: not a directory; %s", dir, INSTALL_HINT);
        goto out;
    }
    st = list_corpus_files(dir, &available);
    if (st != QAT_OK) goto out;
    st = select_files(spec, dir, kind, &named, &available, &selected);
    if (st != QAT_OK) goto out;

    for (int i = 0; i < selected.n; i++) {
        qat_strbuf_clear(&path);
        qat_strbuf_printf(&path, "%s/%s", dir, selected.names[i]);
        void *text;
        size_t len;
        st = qat_file_read_all(path.data, &text, &len);
        if (st != QAT_OK) goto out;
        split_entries(text, len, val_permille, &scratch, &train, &val, &ntrain, &nval);
        free(text);
    }
    if (ntrain + nval == 0) {
        st = qat_error_set(QAT_ERR_INVALID, "dataset \"%s\": the %d file%s selected in %s hold no entries",
                           spec, selected.n, selected.n == 1 ? "" : "s", dir);
        goto out;
    }
    if (ntrain == 0) {
        st = qat_error_set(QAT_ERR_INVALID,
                           "dataset \"%s\": all %u entries fall into validation at %u per mille; none are "
                           "left for training",
                           spec, nval, val_permille);
        goto out;
    }
    set_take(&out->train, &train, ntrain);
    set_take(&out->val, &val, nval);
    memcpy(out->spec, spec, strlen(spec) + 1);
    memcpy(out->dir, dir, strlen(dir) + 1);
    out->nfiles = selected.n;
    out->files = selected.names;
    memset(&selected, 0, sizeof selected); /* names now owned by out */

out:
    names_free(&named);
    names_free(&available);
    names_free(&selected);
    qat_strbuf_free(&path);
    qat_strbuf_free(&scratch);
    qat_strbuf_free(&train);
    qat_strbuf_free(&val);
    return st;
}

void qat_text_corpus_free(qat_text_corpus *c)
{
    free(c->train.bytes);
    free(c->val.bytes);
    for (int i = 0; i < c->nfiles; i++) free(c->files[i]);
    free(c->files);
    memset(c, 0, sizeof *c);
}

bool qat_text_spec_is_fortunes(const char *spec)
{
    return spec && strncmp(spec, QAT_FORTUNES_SPEC_PREFIX, strlen(QAT_FORTUNES_SPEC_PREFIX)) == 0;
}

void qat_text_batch_random(const qat_text_set *set, qat_rng *rng, int batch, int ctx, int32_t *x,
                           int32_t *y)
{
    QAT_ASSERT(set && rng && x && y);
    QAT_ASSERT(batch > 0 && ctx > 0);
    QAT_ASSERT_MSG(set->len > (size_t)ctx, "text set shorter than one window");
    QAT_ASSERT_MSG(set->len - (size_t)ctx <= UINT32_MAX, "text set too long for qat_rng_below");
    uint32_t starts = (uint32_t)(set->len - (size_t)ctx);
    for (int b = 0; b < batch; b++) {
        const uint8_t *w = set->bytes + qat_rng_below(rng, starts);
        int32_t *xb = x + (size_t)b * ctx, *yb = y + (size_t)b * ctx;
        for (int t = 0; t < ctx; t++) {
            xb[t] = w[t];
            yb[t] = w[t + 1];
        }
    }
}

uint32_t qat_text_window_count(const qat_text_set *set, int ctx)
{
    QAT_ASSERT(set && ctx > 0);
    if (set->len < 2) return 0;
    size_t n = (set->len - 1 + (size_t)ctx - 1) / (size_t)ctx;
    QAT_ASSERT_MSG(n <= UINT32_MAX, "text set has too many windows");
    return (uint32_t)n;
}

int qat_text_window(const qat_text_set *set, uint32_t w, int ctx, int32_t *x, int32_t *y)
{
    QAT_ASSERT(set && x && y);
    QAT_ASSERT_MSG(w < qat_text_window_count(set, ctx), "window index out of range");
    size_t start = (size_t)w * (size_t)ctx, left = set->len - 1 - start;
    int valid = left < (size_t)ctx ? (int)left : ctx;
    for (int t = 0; t < valid; t++) {
        x[t] = set->bytes[start + (size_t)t];
        y[t] = set->bytes[start + (size_t)t + 1];
    }
    for (int t = valid; t < ctx; t++) x[t] = y[t] = 0;
    return valid;
}
