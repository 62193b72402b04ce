// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda | FileCheck %s --check-prefix=PTX

// Decode attention split over the KV positions (flash-decoding). After the
// append, a one-token step launches the chunk kernel (one block per chunk
// of 128 positions and KV head: 32 x 8 blocks at 4096 positions) and the
// kernel that merges a head's chunks, both through the step's workspace,
// which the memory plan appends to scratch (32 heads x 32 chunks x (128
// outputs + maximum + sum) floats = 532480 bytes); other steps keep one block
// per (token, head).
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_kv_append_kv8_d128_L1_c4096_l0", "kiln_attention_decode_h32_kv8_d128_L1_c4096_l0_w0_s0p0883884_chunk128_warps8", "kiln_attention_combine_h32_d128_c4096_w0_chunk128", "kiln_attention_h32_kv8_d128_L1_c4096_l0_w0_causal_s0p0883884_split16"]
// CHECK-SAME: kiln.scratch_bytes = 532480
// CHECK: llvm.call
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %{{.*}}, %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.view %{{.*}}[%{{.*}}][] : memref<?xi8> to memref<532480xi8>
// CHECK: llvm.call
// CHECK: llvm.call
// CHECK: } else {
// CHECK: llvm.call
// CHECK-NOT: llvm.call
// CHECK: return

// The chunk kernel reads each lane's 16 bytes of a K or V row with 128-bit
// loads, sums a row's scores over its lanes with shuffles, and merges its
// warps' partials after a barrier; the merge kernel writes y.
// PTX: .visible .entry kiln_attention_decode_h32_kv8_d128_L1_c4096_l0_w0_s0p0883884_chunk128_warps8(
// PTX-SAME: ld.global.v4.b32
// PTX-SAME: shfl.sync.bfly.b32
// PTX-SAME: bar.sync
// PTX-SAME: st.global.b32
// PTX-SAME: .visible .entry kiln_attention_combine_h32_d128_c4096_w0_chunk128(
// PTX-SAME: st.global.b32
func.func @forward(%q: tensor<?x4096xf32>, %k: tensor<?x1024xf32>, %v: tensor<?x1024xf32>, %cache: !kiln.kv_cache<1x4096x8x128xf32>, %pos: index) -> tensor<?x4096xf32> attributes {kiln.max_tokens = 4} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 0 : i64, num_heads = 32 : i64, scale = 8.838835e-02 : f32} : tensor<?x4096xf32>, tensor<?x1024xf32>, tensor<?x1024xf32>, !kiln.kv_cache<1x4096x8x128xf32> -> tensor<?x4096xf32>
  return %a : tensor<?x4096xf32>
}

// -----

// A sliding window and a softcap are in the kernels' names (and code);
// head_dim 256 takes two 16-byte pieces a lane. Fewer positions take smaller
// chunks, down to 64 (16 chunks of the single KV head).
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: "kiln_attention_decode_h4_kv1_d256_L2_c1024_l1_w512_s0p0625_cap50_chunk64_warps8", "kiln_attention_combine_h4_d256_c1024_w512_chunk64"
// CHECK-SAME: kiln.scratch_bytes = 66048
func.func @forward(%q: tensor<?x1024xf32>, %k: tensor<?x256xf32>, %v: tensor<?x256xf32>, %cache: !kiln.kv_cache<2x1024x1x256xf32>, %pos: index) -> tensor<?x1024xf32> attributes {kiln.max_tokens = 4} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 1 : i64, num_heads = 4 : i64, scale = 6.250000e-02 : f32, sliding_window = 512, softcap = 5.000000e+01 : f32} : tensor<?x1024xf32>, tensor<?x256xf32>, tensor<?x256xf32>, !kiln.kv_cache<2x1024x1x256xf32> -> tensor<?x1024xf32>
  return %a : tensor<?x1024xf32>
}

// -----

// head_dim 96 does not split into 16-byte pieces over a power of two of
// lanes: one block per (token, head) at every step, and no workspace.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_kv_append_kv2_d96_L1_c256_l0", "kiln_attention_h4_kv2_d96_L1_c256_l0_w0_causal_s0p102062_split16"]
// CHECK-SAME: kiln.scratch_bytes = 1 :
// CHECK-NOT: scf.if
// CHECK: return
func.func @forward(%q: tensor<?x384xf32>, %k: tensor<?x192xf32>, %v: tensor<?x192xf32>, %cache: !kiln.kv_cache<1x256x2x96xf32>, %pos: index) -> tensor<?x384xf32> attributes {kiln.max_tokens = 4} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 0 : i64, num_heads = 4 : i64, scale = 1.020620e-01 : f32} : tensor<?x384xf32>, tensor<?x192xf32>, tensor<?x192xf32>, !kiln.kv_cache<1x256x2x96xf32> -> tensor<?x384xf32>
  return %a : tensor<?x384xf32>
}
