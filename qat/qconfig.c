#include "qat/qconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fileio.h"

void qat_qconfig_uniform(qat_qconfig *c, const qat_model_desc *desc, int wbits, int abits, qat_granularity gran,
                         int group)
{
    memset(c, 0, sizeof *c);
    c->desc = desc;
    c->nlayers = desc->nlayers;
    c->weight_symmetric = true;
    for (int i = 0; i < c->nlayers; i++) c->layers[i] = (qat_layer_qconfig){ .wbits = wbits, .abits = abits, .gran = gran, .group = group };
}

bool qat_bits_parse(const char *text, int *bits)
{
    if (strcmp(text, "fp32") == 0) {
        *bits = 0;
        return true;
    }
    if (text[0] >= '0' + QAT_QBITS_MIN && text[0] <= '0' + QAT_QBITS_MAX && text[1] == '\0') {
        *bits = text[0] - '0';
        return true;
    }
    return false;
}

qat_status qat_qconfig_parse_bits_map(qat_qconfig *c, const char *text, size_t len, const char *source)
{
    bool seen[QAT_MODEL_MAX_LAYERS] = { false };
    size_t pos = 0;
    int lineno = 0;
    while (pos < len) {
        lineno++;
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        char line[1024];
        size_t n = end - pos;
        if (n >= sizeof line)
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: line too long (%zu bytes)", source, lineno, n);
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *fields[5];
        int nf = 0;
        for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
            if (nf == 5) break;
            fields[nf++] = tok;
        }
        if (nf == 0) continue;
        if (nf < 3 || nf > 4)
            return qat_error_set(QAT_ERR_INVALID,
                                 "%s:%d: expected 'LAYER WEIGHT_BITS ACT_BITS [GRANULARITY]', got %d field%s",
                                 source, lineno, nf, nf == 1 ? "" : "s");
        int layer = qat_model_layer_find(c->desc, fields[0]);
        if (layer < 0) {
            char names[160];
            qat_model_layer_names(c->desc, names, sizeof names);
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown layer '%s' (%s has %s)", source, lineno, fields[0],
                                 qat_model_name(c->desc->config.kind), names);
        }
        if (seen[layer])
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: layer '%s' is listed twice", source, lineno, fields[0]);
        seen[layer] = true;
        qat_layer_qconfig *l = &c->layers[layer];
        memset(&l->wruns, 0, sizeof l->wruns);
        if (strchr(fields[1], 'x')) {
            if (!qat_bit_runs_parse(fields[1], &l->wruns))
                return qat_error_set(QAT_ERR_INVALID,
                                     "%s:%d: weight bits '%s' must be runs of rows BITSxROWS joined by '+' (bits %d..%d, "
                                     "at most %d runs)", source, lineno, fields[1], QAT_QBITS_MIN, QAT_QBITS_MAX,
                                     QAT_MAX_BIT_RUNS);
            const int64_t rows = c->desc->layers[layer].rows;
            if (qat_bit_runs_rows(&l->wruns) != rows)
                return qat_error_set(QAT_ERR_INVALID, "%s:%d: weight bits '%s' cover %lld rows, layer '%s' has %lld",
                                     source, lineno, fields[1], (long long)qat_bit_runs_rows(&l->wruns), fields[0],
                                     (long long)rows);
            l->wbits = qat_bit_runs_max_bits(&l->wruns);
            if (l->wruns.count == 1) memset(&l->wruns, 0, sizeof l->wruns);
        } else if (!qat_bits_parse(fields[1], &l->wbits)) {
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: weight bits '%s' must be %d..%d, fp32 or runs like 2x16+3x112",
                                 source, lineno, fields[1], QAT_QBITS_MIN, QAT_QBITS_MAX);
        }
        if (!qat_bits_parse(fields[2], &l->abits))
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: activation bits '%s' must be %d..%d or fp32", source,
                                 lineno, fields[2], QAT_QBITS_MIN, QAT_QBITS_MAX);
        if (nf == 4 && !qat_granularity_parse(fields[3], &l->gran, &l->group))
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: granularity '%s' must be tensor, channel or group:G",
                                 source, lineno, fields[3]);
        if (l->wruns.count && l->gran == QAT_GRAN_TENSOR)
            return qat_error_set(QAT_ERR_INVALID,
                                 "%s:%d: weight bits '%s' give rows their own widths, which needs channel or group:G "
                                 "granularity, not tensor", source, lineno, fields[1]);
    }
    return QAT_OK;
}

qat_status qat_qconfig_load_bits_map(qat_qconfig *c, const char *path)
{
    void *data;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &data, &size));
    qat_status st = qat_qconfig_parse_bits_map(c, data, size, path);
    free(data);
    return st;
}

void qat_qconfig_set_ends_8bit(qat_qconfig *c)
{
    c->ends_8bit = true;
    int ends[2] = { 0, c->nlayers - 1 };
    for (int i = 0; i < 2; i++) {
        qat_layer_qconfig *l = &c->layers[ends[i]];
        if (l->wbits) l->wbits = 8;
        memset(&l->wruns, 0, sizeof l->wruns);
        if (l->abits) l->abits = 8;
    }
}

qat_qscheme qat_qconfig_weight_scheme(const qat_qconfig *c, int layer)
{
    const qat_layer_qconfig *l = &c->layers[layer];
    return (qat_qscheme){ .bits = l->wbits, .symmetric = c->weight_symmetric, .gran = l->gran, .group = l->group,
                          .runs = l->wruns };
}
