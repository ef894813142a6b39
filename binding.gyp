{
  # One addon, no system libraries. Build flags must stay portable: SIMD paths are chosen at run
  # time (target attributes plus cpu checks), never by -march, so the .node runs on any x86-64.
  'targets': [
    {
      'target_name': 'gradserve',
      'sources': [
        'src/native/addon.cc',
        'src/native/args.cc',
        'src/native/commands.cc',
        'src/native/kernels/memory.cc',
        'src/native/kernels/threads.cc',
        'src/native/kernels/stream.cc',
        'src/native/kernels/layout.cc',
        'src/native/kernels/elementwise.cc',
        'src/native/kernels/elementwise_avx2.cc',
        'src/native/kernels/unary_f32.cc',
        'src/native/kernels/unary_f32_avx2.cc',
        'src/native/kernels/unary_f32_avx512.cc',
        'src/native/kernels/strided.cc',
        'src/native/kernels/indexed.cc',
        'src/native/kernels/reduce.cc',
        'src/native/kernels/reduce_contig.cc',
        'src/native/kernels/random.cc',
        'src/native/kernels/gemm.cc',
        'src/native/kernels/gemm_sse2.cc',
        'src/native/kernels/gemm_avx2.cc',
        'src/native/kernels/gemm_avx512.cc',
      ],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        'src/native',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NAPI_CPP_EXCEPTIONS',
        'NODE_ADDON_API_CPP_EXCEPTIONS_ALL',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
      ],
      'cflags!': [ '-fno-exceptions' ],
      'cflags_cc!': [ '-fno-exceptions', '-fno-rtti', '-std=gnu++17' ],
      # -ffp-contract=off: arange, random and the elementwise kernels must round exactly like
      # JavaScript; a fused multiply-add would change the last bit. GEMM uses explicit FMA.
      'cflags': [ '-O3', '-fexceptions', '-ffp-contract=off', '-fvisibility=hidden', '-pthread' ],
      'cflags_cc': [ '-std=c++17', '-O3', '-fexceptions', '-ffp-contract=off', '-pthread' ],
      'ldflags': [ '-pthread' ],
    },
  ],
}
