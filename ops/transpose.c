/* Swap of axes 1 and 2 of a 4-d tensor: the reference (see ops_ref.h). */
#include "ops/ops_ref.h"

void qat_transpose12_ref(float *y,       /* (A, C, B, D) */
                         const float *x, /* (A, B, C, D) */
                         size_t a, size_t b, size_t c, size_t d)
{
    for (size_t ia = 0; ia < a; ia++)
        for (size_t j = 0; j < c; j++)
            for (size_t i = 0; i < b; i++)
                for (size_t k = 0; k < d; k++) y[((ia * c + j) * b + i) * d + k] = x[((ia * b + i) * c + j) * d + k];
}
