// Philox4x32-10, the counter-based RNG of qat/rng.c, for shaders: the same
// key/counter layout, so a (seed, stream, index) gives the same word on the
// host and on every device.
//   key     = (seed lo, seed hi)
//   counter = (block lo, block hi, stream lo, stream hi); word i is block i/4, lane i%4
uvec4 philox4x32_10(uvec4 ctr, uvec2 key)
{
    for (int round = 0; round < 10; round++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, ctr.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, ctr.z, hi1, lo1);
        ctr = uvec4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
        key += uvec2(0x9E3779B9u, 0xBB67AE85u);
    }
    return ctr;
}
