/* Exact (erf) GELU: reference forward and backward, and the float erf
 * approximation the shaders use (see ops_ref.h). */
#include "ops/ops_ref.h"

#include <math.h>

/* 1/sqrt(2) and 1/sqrt(2 pi), rounded to float once. Multiplying by 1/sqrt(2)
 * instead of dividing by sqrt(2) is what PyTorch does (M_SQRT1_2). */
#define QAT_SQRT1_2 0.70710678118654752440f
#define QAT_INV_SQRT_2PI 0.39894228040143267794f

void qat_gelu_forward_ref(float *y, const float *x, /* each (n) */
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * QAT_SQRT1_2));
    }
}

void qat_gelu_backward_ref(float *dx, const float *dy, const float *x, /* each (n) */
                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * QAT_SQRT1_2)); /* Phi(x) */
        float pdf = expf(-0.5f * v * v) * QAT_INV_SQRT_2PI; /* phi(x) */
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

/* Source: W. J. Cody, "Rational Chebyshev approximations for the error
 * function", Math. Comp. 23 (1969) 631-638, as implemented in netlib
 * specfun CALERF; coefficients are its double-precision sets, rounded to
 * float by the compiler (and by glslc in the shader copy).
 *
 *  |x| < 0.75:       erf(x) = x P(x^2) / Q(x^2)   (Cody's first interval)
 *  0.75 <= |x| < 4:  erf(x) = 1 - exp(-x^2) R(|x|) / S(|x|)  (second interval)
 *  |x| >= 4:         erf(x) = +-1  (erfc(4) = 1.5e-8, below half an ulp of 1)
 *
 * Cody switches at 0.46875 because that is where his first rational stops
 * being good to 18 digits; in float its truncation error is still 5e-14 at
 * 0.75. Switching later helps because the second form ends in 1 - erfc, and
 * the rounding errors of erfc (exp, mul, div: a few ulp relative) cost
 * absolute error in proportion to erfc, which is 0.5 at 0.47 but 0.29 at
 * 0.75. Cody also splits exp(-x^2) into exp(-t^2) exp(-(x-t)(x+t)) to avoid
 * the rounding of x^2; in float that is not needed (measured: no better).
 * Measured on every float in [0, 4.5] against double erf: max abs error
 * 1.4e-7 (at x = 0.7548), against glibc erff 1.2e-7. Odd symmetry is exact.
 * NaN gives NaN, +-inf gives +-1.
 *
 * Shader note: GLSL's exp is only required to be within 3 + 2|x| ulp, which
 * adds up to ~7e-8 near |x| = 0.75 on a GPU that uses the full allowance. */
float qat_erf_approx(float x)
{
    float y = fabsf(x);
    float r;
    if (y < 0.75f) {
        float z = y * y;
        float num = (((0.185777706184603153f * z + 3.16112374387056560f) * z
                      + 113.864154151050156f) * z + 377.485237685302021f) * z
                    + 3209.37758913846947f;
        float den = ((((z + 23.6012909523441209f) * z + 244.024637934444173f) * z
                      + 1282.61652607737228f) * z) + 2844.23683343917062f;
        r = y * num / den;
    } else if (y >= 4.0f) {
        r = 1.0f; /* also +-inf */
    } else { /* 0.75 <= y < 4, or NaN (which stays NaN) */
        float num = (((((((2.15311535474403846e-8f * y + 0.564188496988670089f) * y
                          + 8.88314979438837594f) * y + 66.1191906371416295f) * y
                        + 298.635138197400131f) * y + 881.952221241769090f) * y
                      + 1712.04761263407058f) * y + 2051.07837782607147f) * y
                    + 1230.33935479799725f;
        float den = (((((((y + 15.7449261107098347f) * y + 117.693950891312499f) * y
                          + 537.181101862009858f) * y + 1621.38957456669019f) * y
                        + 3290.79923573345963f) * y + 4362.61909014324716f) * y
                      + 3439.36767414372164f) * y + 1230.33935480374942f;
        float erfc = expf(-y * y) * (num / den);
        r = 1.0f - erfc;
    }
    return x < 0.0f ? -r : r;
}
