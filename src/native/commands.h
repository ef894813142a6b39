// The command buffer: long programs of tiny ops cost one N-API call per batch instead of one or
// two per op. native.ts writes commands into a Float64Array the addon holds on to; `run` decodes
// and submits them in order. Every field is checked as strictly as a direct argument would be.
//
// A command is [opcode, length, fields...]: `length` counts every double of the command, so a
// malformed one is skipped without losing the frame of the next. Views are
// [rank, offset, shape..., strides...]. Handles and op indices are integers; flags are 0 or 1.
#pragma once
#include <cstddef>
#include <string>

#include "handles.h"
#include "kernels/stream.h"

namespace gs {

// The commands in opcode order (Alloc is 0), each with its fields. native.ts keeps the same list
// (COMMANDS); the addon exports this one (abi() in addon.cc) and native.ts refuses to load when the
// two differ.
#define GS_COMMANDS(X)                                                     \
  X(Alloc)         /* h dtype length */                                    \
  X(Free)          /* h */                                                 \
  X(Fill)          /* out value */                                         \
  X(Arange)        /* out start step */                                    \
  X(Eye)           /* out rows cols k */                                   \
  X(Uniform)       /* out seed counter low high */                         \
  X(Normal)        /* out seed counter loc scale */                        \
  X(Unary)         /* op x out */                                          \
  X(Binary)        /* op a [view] b [view] out */                          \
  X(BinaryScalar)  /* op x scalar scalarFirst out */                       \
  X(Where)         /* c [view] a [view] b [view] out */                    \
  X(CopyStrided)   /* x [view] out */                                      \
  X(ScatterAdd)    /* x out [view] */                                      \
  X(Reduce)        /* op x rank shape... naxes axes... out */              \
  X(ArgReduce)     /* isMax x rank shape... axis out */                    \
  X(Gemm)          /* a b out batch m n k transA transB strideA strideB */ \
  X(Cast)          /* x out */                                             \
  X(SetStream)     /* tag */                                               \
  X(WindowMax)     /* x [view] kdims out idx */                            \
  X(IndexTake)     /* x idx out */                                         \
  X(IndexScatterAdd) /* x idx out */

enum class Cmd : int {
#define GS_CMD_ITEM(name) name,
  GS_COMMANDS(GS_CMD_ITEM)
#undef GS_CMD_ITEM
  Count,
};

// Runs every command in p[0, n). A failing command does not stop the ones after it (they were
// issued and their allocations and frees must happen); the first failure's message is returned,
// or an empty string.
std::string run_commands(Stream& stream, HandleTable& table, const double* p, size_t n);

}  // namespace gs
