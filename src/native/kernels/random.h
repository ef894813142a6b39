// The counter-based generator of reference.ts (randomWord / randomUnit), reproduced bit for bit.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace gs {

// JS ToUint32: truncate, wrap modulo 2^32; NaN and infinities give 0.
uint32_t to_uint32(double x);
uint32_t random_word(uint32_t seed, uint32_t j);
// q is a JS number (double); words 2q and 2q+1 are taken as JS computes them.
double random_unit(uint32_t seed, double q);

Work random_uniform(const Buf& out, double seed, double counter, double low, double high);
Work random_normal(const Buf& out, double seed, double counter, double loc, double scale);

}  // namespace gs
