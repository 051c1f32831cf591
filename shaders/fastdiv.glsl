// Integer division without the integer divide, which llvmpipe (lavapipe)
// scalarises lane by lane: a float estimate of a / b corrected by one step
// either way. Exact for a < 2^22 (the estimate is then within 1 of the
// quotient even with GLSL's 2.5-ulp division); kernels whose indices can be
// larger set their EXACT_DIV specialisation constant and divide exactly.
// Include after declaring `const bool EXACT_DIV`.

uint fdiv(uint a, uint b)
{
    if (EXACT_DIV) return a / b;
    uint q = uint(float(a) * (1.0 / float(b)));
    if (q * b > a) q -= 1u;
    else if (a - q * b >= b) q += 1u;
    return q;
}
