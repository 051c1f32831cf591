#include <criterion/criterion.h>

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "qat/json.h"
#include "tests/test_util.h"

static int count_entries_containing(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

/* ------------------------------------------------------------------ fileio */

TestSuite(fileio, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

Test(fileio, write_atomic_then_read_all_round_trips_and_leaves_no_temp_file)
{
    const char *path = test_tmp_path("data.bin");
    unsigned char data[3000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 7);
    cr_assert_eq(qat_file_write_atomic(path, data, sizeof data), QAT_OK, "%s", qat_error_message());
    /* Overwriting replaces the whole content. */
    cr_assert_eq(qat_file_write_atomic(path, "short", 5), QAT_OK);
    void *back;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &back, &size), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(size, 5);
    cr_assert_str_eq(back, "short"); /* NUL-terminated */
    free(back);
    cr_assert_eq(count_entries_containing(test_tmpdir, ".tmp."), 0);
}

Test(fileio, write_atomic_of_empty_data_creates_empty_file)
{
    const char *path = test_tmp_path("empty");
    cr_assert_eq(qat_file_write_atomic(path, NULL, 0), QAT_OK);
    void *back;
    size_t size = 99;
    cr_assert_eq(qat_file_read_all(path, &back, &size), QAT_OK);
    cr_assert_eq(size, 0);
    cr_assert_eq(((char *)back)[0], '\0');
    free(back);
}

Test(fileio, write_atomic_into_missing_directory_names_path_and_reason)
{
    const char *path = test_tmp_path("no/such/dir/file.bin");
    cr_assert_eq(qat_file_write_atomic(path, "x", 1), QAT_ERR_IO);
    assert_error_mentions(path);
    assert_error_mentions("No such file or directory");
}

Test(fileio, write_atomic_over_a_directory_fails_and_removes_temp_file)
{
    const char *path = test_tmp_path("adir");
    cr_assert_eq(mkdir(path, 0777), 0);
    cr_assert_eq(qat_file_write_atomic(path, "x", 1), QAT_ERR_IO);
    assert_error_mentions(path);
    cr_assert_eq(count_entries_containing(test_tmpdir, ".tmp."), 0);
}

Test(fileio, read_all_of_missing_file_names_path_and_reason)
{
    const char *path = test_tmp_path("missing.txt");
    void *data = (void *)0x1;
    size_t size = 7;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_ERR_IO);
    assert_error_mentions(path);
    assert_error_mentions("No such file or directory");
    cr_assert_eq(data, (void *)0x1, "outputs must be untouched on failure");
    cr_assert_eq(size, 7);
}

Test(fileio, read_all_reads_a_pipe_past_its_reported_size)
{
    /* A FIFO reports size 0, so the buffer has to grow as data arrives. */
    const char *path = test_tmp_path("fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        FILE *f = fopen(path, "w");
        for (int i = 0; f && i < 10000; i++) fputc('a' + i % 26, f);
        _exit(f && fclose(f) == 0 ? 0 : 1);
    }
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_eq(size, 10000);
    cr_assert_eq(((char *)data)[9999], 'a' + 9999 % 26);
    cr_assert_eq(((char *)data)[10000], '\0');
    free(data);
}

Test(fileio, read_all_of_directory_is_an_error)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(test_tmpdir, &data, &size), QAT_ERR_IO);
    assert_error_mentions(test_tmpdir);
}

Test(fileio, mkdir_p_creates_nested_dirs_and_accepts_existing_ones)
{
    const char *path = test_tmp_path("a/b//c/d/");
    cr_assert_eq(qat_mkdir_p(path), QAT_OK, "%s", qat_error_message());
    struct stat sb;
    cr_assert_eq(stat(test_tmp_path("a/b/c/d"), &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    cr_assert_eq(qat_mkdir_p(path), QAT_OK, "existing directories are fine");
    cr_assert_eq(qat_mkdir_p(test_tmpdir), QAT_OK);
}

Test(fileio, mkdir_p_through_a_file_names_the_blocking_component)
{
    cr_assert_eq(qat_file_write_atomic(test_tmp_path("file"), "x", 1), QAT_OK);
    const char *path = test_tmp_path("file/sub/dir");
    cr_assert_neq(qat_mkdir_p(path), QAT_OK);
    assert_error_mentions(path);
    assert_error_mentions("not a directory");
    cr_assert_neq(qat_mkdir_p(test_tmp_path("file")), QAT_OK);
    assert_error_mentions("exists and is not a directory");
}

Test(strbuf, printf_and_append_grow_and_stay_nul_terminated)
{
    qat_strbuf sb = {0};
    qat_strbuf_printf(&sb, "%s-%d", "abc", 42);
    cr_assert_str_eq(sb.data, "abc-42");
    cr_assert_eq(sb.len, 6);
    for (int i = 0; i < 1000; i++) qat_strbuf_printf(&sb, "%04d", i);
    cr_assert_eq(sb.len, 6 + 4000);
    cr_assert_eq(strlen(sb.data), sb.len);
    cr_assert_eq(strncmp(sb.data + 6 + 4 * 999, "0999", 4), 0);
    qat_strbuf_append(&sb, "xyz", 2);
    qat_strbuf_putc(&sb, '!');
    cr_assert_str_eq(sb.data + sb.len - 3, "xy!");
    qat_strbuf_clear(&sb);
    cr_assert_eq(sb.len, 0);
    cr_assert_str_eq(sb.data, "");
    qat_strbuf_free(&sb);
    cr_assert_null(sb.data);
    qat_strbuf_printf(&sb, "%s", ""); /* an empty append still yields a string */
    cr_assert_str_eq(sb.data, "");
    qat_strbuf_free(&sb);
}

/* ------------------------------------------------------------------ json writer */

static char *write_string(const char *s)
{
    static qat_strbuf sb;
    qat_strbuf_clear(&sb);
    qat_json_write_string(&sb, s);
    return sb.data;
}

static char *write_number(double v)
{
    static qat_strbuf sb;
    qat_strbuf_clear(&sb);
    qat_json_write_number(&sb, v);
    return sb.data;
}

Test(json, write_string_escapes_quotes_backslashes_and_control_characters)
{
    cr_assert_str_eq(write_string("plain"), "\"plain\"");
    cr_assert_str_eq(write_string("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    cr_assert_str_eq(write_string("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
    cr_assert_str_eq(write_string("\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\"");
    cr_assert_str_eq(write_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"", "UTF-8 passes through");
}

Test(json, write_number_prints_integers_plainly_and_shortest_round_trip_otherwise)
{
    cr_assert_str_eq(write_number(0), "0");
    cr_assert_str_eq(write_number(3), "3");
    cr_assert_str_eq(write_number(-42), "-42");
    cr_assert_str_eq(write_number(1e15), "1000000000000000");
    cr_assert_str_eq(write_number(9007199254740991.0), "9007199254740991");
    cr_assert_str_eq(write_number(0.1), "0.1");
    cr_assert_str_eq(write_number(-2.5), "-2.5");
    cr_assert_str_eq(write_number(1.0 / 3.0), "0.3333333333333333");
    cr_assert_str_eq(write_number(NAN), "null");
    cr_assert_str_eq(write_number(INFINITY), "null");
    cr_assert_str_eq(write_number(-INFINITY), "null");
    const double values[] = {0.1,     1.0 / 3.0, 2.0 / 3.0, 1e-300,  1e300, 5e-324,
                             1.7e308, 123.456,   -0.0,      1e21,    3e53,  0.30000000000000004,
                             M_PI,    (double)0.1f, 1e16 + 2, 4.35, 8.41e21};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *s = write_number(values[i]);
        double back = strtod(s, NULL);
        cr_assert(memcmp(&back, &values[i], sizeof back) == 0, "%.17g printed as %s", values[i], s);
        cr_assert_null(strchr(s, 'n'), "no nan/inf tokens: %s", s);
    }
}

Test(json, write_helpers_for_integers_booleans_and_null)
{
    qat_strbuf sb = {0};
    qat_json_write_uint(&sb, UINT64_MAX);
    qat_strbuf_putc(&sb, ',');
    qat_json_write_int(&sb, INT64_MIN);
    qat_strbuf_putc(&sb, ',');
    qat_json_write_bool(&sb, true);
    qat_strbuf_putc(&sb, ',');
    qat_json_write_bool(&sb, false);
    qat_strbuf_putc(&sb, ',');
    qat_json_write_null(&sb);
    cr_assert_str_eq(sb.data, "18446744073709551615,-9223372036854775808,true,false,null");
    qat_strbuf_free(&sb);
}

/* ------------------------------------------------------------------ json parser */

static qat_json_value *parse_ok(const char *text)
{
    qat_json_value *v = NULL;
    qat_status st = qat_json_parse(text, strlen(text), "test.json", &v);
    cr_assert_eq(st, QAT_OK, "parsing %s: %s", text, qat_error_message());
    cr_assert_not_null(v);
    return v;
}

/* Parses text that must fail; checks the message names the source and the
 * byte offset. */
static void parse_fails_at(const char *text, size_t offset, const char *reason)
{
    qat_json_value *v = (qat_json_value *)0x1;
    qat_status st = qat_json_parse(text, strlen(text), "bad.json", &v);
    cr_assert_eq(st, QAT_ERR_FORMAT, "accepted invalid JSON: %s", text);
    cr_assert_null(v);
    char where[64];
    snprintf(where, sizeof where, "bad.json: invalid JSON at byte %zu: ", offset);
    cr_assert(strstr(qat_error_message(), where), "for %s: message \"%s\", expected \"%s\"", text,
              qat_error_message(), where);
    cr_assert(strstr(qat_error_message(), reason), "for %s: message \"%s\" lacks \"%s\"", text,
              qat_error_message(), reason);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

Test(json, parse_builds_tree_with_keys_in_file_order)
{
    qat_json_value *v = parse_ok(" {\"z\": [1, -2.5e3, true, false, null],\n \"a\": {\"s\": \"x\"},"
                                 " \"e\": [], \"o\": {}} ");
    cr_assert_eq(v->type, QAT_JSON_OBJECT);
    cr_assert_eq(v->count, 4);
    cr_assert_str_eq(v->keys[0], "z");
    cr_assert_str_eq(v->keys[1], "a");
    cr_assert_str_eq(v->keys[2], "e");
    const qat_json_value *z = qat_json_get(v, "z");
    cr_assert_eq(z->type, QAT_JSON_ARRAY);
    cr_assert_eq(z->count, 5);
    cr_assert_eq(z->items[0].number, 1.0);
    cr_assert_eq(z->items[1].number, -2500.0);
    cr_assert_eq(z->items[2].type, QAT_JSON_BOOL);
    cr_assert(z->items[2].boolean);
    cr_assert_not(z->items[3].boolean);
    cr_assert_eq(z->items[4].type, QAT_JSON_NULL);
    const qat_json_value *s = qat_json_get(qat_json_get(v, "a"), "s");
    cr_assert_str_eq(s->string, "x");
    cr_assert_eq(qat_json_get(v, "e")->count, 0);
    cr_assert_eq(qat_json_get(v, "o")->type, QAT_JSON_OBJECT);
    cr_assert_null(qat_json_get(v, "missing"));
    cr_assert_null(qat_json_get(z, "z"), "lookup in a non-object is NULL");
    cr_assert_null(qat_json_get(NULL, "z"));
    cr_assert_str_eq(qat_json_type_name(z->type), "array");
    qat_json_free(v);
}

Test(json, parse_decodes_escapes_and_surrogate_pairs_to_utf8)
{
    qat_json_value *v = parse_ok("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u2713 \\ud83d\\ude00 \\u0000!\"");
    cr_assert_eq(v->type, QAT_JSON_STRING);
    const char want[] = "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \0!";
    cr_assert_eq(v->string_len, sizeof want - 1);
    cr_assert_arr_eq(v->string, want, sizeof want);
    qat_json_free(v);
}

Test(json, parse_accepts_scalars_at_top_level_and_raw_utf8)
{
    qat_json_value *v = parse_ok("-0.125e+2");
    cr_assert_eq(v->number, -12.5);
    qat_json_free(v);
    v = parse_ok("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    cr_assert_str_eq(v->string, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    qat_json_free(v);
}

Test(json, writer_output_parses_back_to_the_same_string)
{
    char all[128];
    for (int i = 1; i < 128; i++) all[i - 1] = (char)i;
    all[127] = '\0';
    qat_strbuf sb = {0};
    qat_json_write_string(&sb, all);
    qat_json_value *v = parse_ok(sb.data);
    cr_assert_str_eq(v->string, all);
    qat_json_free(v);
    qat_strbuf_free(&sb);
}

Test(json, parse_does_not_read_past_len)
{
    /* Only "[1" is given; the rest of the C string must be ignored. */
    qat_json_value *v = (qat_json_value *)0x1;
    cr_assert_eq(qat_json_parse("[1]", 2, "cut.json", &v), QAT_ERR_FORMAT);
    cr_assert(strstr(qat_error_message(), "cut.json: invalid JSON at byte 2: unterminated array"),
              "%s", qat_error_message());
    cr_assert_eq(qat_json_parse("12", 1, "cut.json", &v), QAT_OK);
    cr_assert_eq(v->number, 1.0);
    qat_json_free(v);
}

Test(json, parse_reports_syntax_errors_with_source_and_byte_offset)
{
    parse_fails_at("", 0, "unexpected end of input");
    parse_fails_at("   ", 3, "unexpected end of input");
    parse_fails_at("[1,]", 3, "expected a value");
    parse_fails_at("{\"a\":1,}", 7, "expected a string key");
    parse_fails_at("{\"a\" 1}", 5, "expected ':'");
    parse_fails_at("[1 2]", 3, "expected ',' or ']'");
    parse_fails_at("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'");
    parse_fails_at("\"abc", 0, "unterminated string");
    parse_fails_at("[\"a\\x\"]", 3, "invalid escape");
    parse_fails_at("\"\\u12G4\"", 5, "bad hex digit");
    parse_fails_at("\"\\udc00\"", 1, "lone low surrogate");
    parse_fails_at("\"\\ud800x\"", 1, "high surrogate");
    parse_fails_at("\"a\tb\"", 2, "control character");
    parse_fails_at("\"\xc3\x28\"", 1, "invalid UTF-8");
    parse_fails_at("\"\xc0\xaf\"", 1, "invalid UTF-8"); /* overlong '/' */
    parse_fails_at("\"\xed\xa0\x80\"", 1, "invalid UTF-8"); /* encoded surrogate */
    parse_fails_at("01", 1, "unexpected data after");
    parse_fails_at("-", 1, "malformed number");
    parse_fails_at("1.", 2, "digit expected after '.'");
    parse_fails_at("1e+", 3, "digit expected in exponent");
    parse_fails_at("+1", 0, "expected a value");
    parse_fails_at("1e999", 0, "number out of range");
    parse_fails_at("NaN", 0, "expected a value");
    parse_fails_at("tru", 0, "expected a value");
    parse_fails_at("{} x", 3, "unexpected data after");
    parse_fails_at("{\"k\":1, \"k\":2}", 0, "duplicate key \"k\"");
    parse_fails_at("{\"a\\u0000b\":1}", 1, "object key contains \\u0000");
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

Test(json, parse_limits_nesting_depth)
{
    char *ok = nested(QAT_JSON_MAX_DEPTH);
    qat_json_value *v = parse_ok(ok);
    qat_json_free(v);
    free(ok);

    char *deep = nested(QAT_JSON_MAX_DEPTH + 1);
    parse_fails_at(deep, QAT_JSON_MAX_DEPTH, "nested more than 64 deep");
    free(deep);

    /* Far deeper input must fail the same way, not overflow the stack. */
    char *hostile = nested(1000000);
    parse_fails_at(hostile, QAT_JSON_MAX_DEPTH, "nested more than 64 deep");
    free(hostile);
}

Test(json, parse_failure_midway_frees_partial_tree)
{
    /* Under ASan this checks that partially built children are released. */
    parse_fails_at("{\"a\":[\"x\",{\"b\":\"y\",\"c\":[1,2,\"z\"]}],\"d\":\"w\",\"e\":[tru]}", 48,
                   "expected a value");
}
