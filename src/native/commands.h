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

// Keep in step with the opcodes in src/engine/native.ts.
enum class Cmd : int {
  Alloc = 0,       // h dtype length
  Free = 1,        // h
  Fill = 2,        // out value
  Arange = 3,      // out start step
  Eye = 4,         // out rows cols k
  Uniform = 5,     // out seed counter low high
  Normal = 6,      // out seed counter loc scale
  Unary = 7,       // op x out
  Binary = 8,      // op a [view] b [view] out
  BinaryScalar = 9,  // op x scalar scalarFirst out
  Where = 10,      // c [view] a [view] b [view] out
  CopyStrided = 11,  // x [view] out
  ScatterAdd = 12,   // x out [view]
  Reduce = 13,     // op x rank shape... naxes axes... out
  ArgReduce = 14,  // isMax x rank shape... axis out
  Gemm = 15,       // a b out batch m n k transA transB strideA strideB
  Cast = 16,       // x out
  SetStream = 17,  // tag
  Count = 18,
};

// Runs every command in p[0, n). A failing command does not stop the ones after it (they were
// issued and their allocations and frees must happen); the first failure's message is returned,
// or an empty string.
std::string run_commands(Stream& stream, HandleTable& table, const double* p, size_t n);

}  // namespace gs
