/* Text corpora for byte-level language modelling (vocabulary 256): the
 * fortune cookie files of Debian's `fortunes` package.
 *
 * A fortune file is plain text whose entries are separated by lines holding
 * only `%`. The loader reads the selected files in name order (strcmp),
 * splits each into entries, and sends every entry to training or validation
 * by a hash of its bytes (FNV-1a 64 mod 1000 < val_permille), so the split
 * does not depend on which files are loaded or in what order, and duplicate
 * entries always land on the same side. Each split is one byte stream: its
 * entries in file order, each followed by the separator line "%\n".
 *
 * Specs:
 *   fortunes:tech           computers, debian, linux, linuxcookie, perl
 *   fortunes:general        every other file
 *   fortunes:all            every file
 *   fortunes:NAME+NAME+...  the named files
 * A "file" is a regular file in the directory whose name does not start with
 * '.' and does not end in ".dat" (strfile's index) or ".u8" (Debian's links). */
#ifndef QAT_DATASETS_FORTUNES_H
#define QAT_DATASETS_FORTUNES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qat/common.h"
#include "qat/rng.h"

#define QAT_FORTUNES_DEFAULT_DIR "/usr/share/games/fortunes"
#define QAT_FORTUNES_DIR_ENV "QAT_FORTUNES_DIR"
#define QAT_FORTUNES_SPEC_PREFIX "fortunes:"
#define QAT_FORTUNES_DEFAULT_VAL_PERMILLE 100
/* The byte alphabet: every byte value is a token. */
#define QAT_TEXT_VOCAB 256

typedef struct qat_text_set {
    uint8_t *bytes; /* entries, each followed by "%\n" */
    size_t len;
    uint32_t entries;
} qat_text_set;

typedef struct qat_text_corpus {
    qat_text_set train, val;
    char spec[256]; /* as given, e.g. "fortunes:tech" */
    char dir[4096]; /* the directory the files came from */
    int nfiles;     /* files used */
    char **files;   /* their names (no directory), in load order, for run records */
} qat_text_corpus;

/* Loads the files `spec` selects (see above) from `dir`; when `dir` is NULL,
 * from $QAT_FORTUNES_DIR if set and non-empty, else QAT_FORTUNES_DEFAULT_DIR.
 * An entry is the text between separator lines (a file's text before its
 * first separator is one too), its lines kept with their newlines. A
 * separator is "%" alone on a line, also as "%\r\n" or "%" at the end of the
 * file; entries that are empty or only whitespace are dropped; a last entry
 * without a final newline gets one, so the separator after it stays a line
 * of its own; every other byte (CR included) is kept as it is.
 * val_permille must be below 1000 (QAT_FORTUNES_DEFAULT_VAL_PERMILLE is the
 * usual 10%). Fails with a one-line message naming the spec, directory or
 * file: QAT_ERR_INVALID for a bad spec, a selection without entries or with
 * none left for training; QAT_ERR_IO for a missing directory (with an
 * `apt-get install fortunes` hint) or file. On failure *out is zeroed. */
qat_status qat_fortunes_load(const char *spec, const char *dir, uint32_t val_permille, qat_text_corpus *out);
void qat_text_corpus_free(qat_text_corpus *c);

/* True if `spec` starts with "fortunes:" (the runner and CLI use it to pick
 * the text path; whether the rest is valid is for qat_fortunes_load). */
bool qat_text_spec_is_fortunes(const char *spec);

/* Whether an entry with these bytes (without its separator) belongs to the
 * validation split: qat_fnv1a64 of the bytes, mod 1000, below val_permille. */
bool qat_text_entry_is_val(const uint8_t *entry, size_t len, uint32_t val_permille);

/* Training batch: `batch` windows of ctx + 1 bytes at start offsets drawn
 * uniformly from [0, len - ctx - 1] with qat_rng_below, one draw per window
 * in order; x[b*ctx + t] = window[t], y[b*ctx + t] = window[t + 1]. Requires
 * len > ctx. */
void qat_text_batch_random(const qat_text_set *set, qat_rng *rng, int batch, int ctx, int32_t *x,
                           int32_t *y);

/* Evaluation: every byte after the first is predicted exactly once. Window
 * w's inputs are bytes [w*ctx, w*ctx + ctx) and targets
 * [w*ctx + 1, w*ctx + ctx + 1); the last window may be partial: positions
 * past the end are padded (x = y = 0) and not counted.
 * qat_text_window_count is ceil((len - 1) / ctx) (0 for len < 2);
 * qat_text_window fills x and y (ctx each) and returns the number of valid
 * positions, which come first. */
uint32_t qat_text_window_count(const qat_text_set *set, int ctx);
int qat_text_window(const qat_text_set *set, uint32_t w, int ctx, int32_t *x, int32_t *y);

#endif
