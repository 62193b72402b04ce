// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda | FileCheck %s --check-prefix=PTX

// Prefill of 16 tokens or more over Q4_0 in #kiln_gpu.split runs on tensor
// cores (LinearMma.cpp): the host step launches the decode GEMV at T = 1,
// else the GEMM from 16 tokens (_m64 from 64 tokens: 64 x 128 a block, on
// (N / 128, ceil(T / 64)) blocks; _m16 below: 16 x 64, split-K), else the
// 4-token GEMV. The GEMM's lanes load x with 128-bit loads, convert it to f16
// pairs (values 0, 2 and 1, 3 of the four), turn each code word into f16
// pairs (nibbles | 0x6400, minus 1032) and feed nvvm.mma.sync m16n8k16 (f16
// x f16 -> f32) two steps a block of 32 values, whose sum is then scaled.
// _m64 has 4 x 4 tiles of 2 steps: 32 mma ops; _m16 sums its warps' K
// quarters in shared memory after a barrier.
// CHECK-LABEL: func.func @mma_q4_0(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_0_split_256x256", "kiln_gemm_mma_q4_0_split_256x256_m64", "kiln_gemm_mma_q4_0_split_256x256_m16", "kiln_gemv_q4_0_split_256x256_t4"]
// CHECK: %[[T:.*]] = memref.dim %arg0, %{{.*}} : memref<?x256xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %c1 : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: } else {
// CHECK: %[[MMA:.*]] = arith.cmpi uge, %[[T]], %c16 : index
// CHECK: scf.if %[[MMA]] {
// CHECK: %[[LARGE:.*]] = arith.cmpi uge, %[[T]], %c64 : index
// CHECK: scf.if %[[LARGE]] {
// CHECK: arith.addi %[[T]], %c63 : index
// CHECK: arith.divui %{{.*}}, %c64{{[_0-9]*}} : index
// CHECK: llvm.call %{{.*}}(%arg4, %c1_i32{{[_0-9]*}},
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c15 : index
// CHECK: arith.divui %{{.*}}, %c16{{[_0-9]*}} : index
// CHECK: llvm.call %{{.*}}(%arg4, %c2_i32,
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%arg4, %c3_i32,
// CHECK: gpu.func @kiln_gemm_mma_q4_0_split_256x256_m64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel {
// CHECK: %[[OFFSET:.*]] = arith.constant dense<1.032000e+03> : vector<2xf16>
// CHECK: scf.for
// CHECK: memref.load {{.*}} : memref<68719476736xvector<4xf32>>
// CHECK: memref.load {{.*}} : memref<274877906944xi32>
// CHECK: memref.load {{.*}} : memref<549755813888xf16>
// CHECK: %[[X:.*]] = vector.from_elements %{{.*}}, %{{.*}} : vector<2xf32>
// CHECK: arith.truncf %[[X]] : vector<2xf32> to vector<2xf16>
// CHECK: arith.andi %{{.*}}, %c983055_i32 : i32
// CHECK: arith.ori %{{.*}}, %c1677747200_i32 : i32
// CHECK: %[[B:.*]] = llvm.bitcast %{{.*}} : i32 to vector<2xf16>
// CHECK: arith.subf %[[B]], %[[OFFSET]] : vector<2xf16>
// CHECK-COUNT-32: nvvm.mma.sync A[{{.*}}]  B[{{.*}}]  C[{{.*}}]  {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: nvvm.mma.sync
// CHECK: scf.yield
// CHECK-NOT: gpu.barrier
// CHECK: gpu.func @kiln_gemm_mma_q4_0_split_256x256_m16(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) workgroup(%[[PARTIALS:.*]] : memref<3072xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel {
// CHECK: scf.for
// CHECK-COUNT-32: nvvm.mma.sync
// CHECK: memref.store {{.*}}, %[[PARTIALS]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[PARTIALS]]
// PTX: .target sm_90a
// PTX: .visible .entry kiln_gemm_mma_q4_0_split_256x256_m64(
// PTX: ld.global.v4.b32
// PTX: cvt.rn.f16x2.f32
// PTX: add.rn.f16x2
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX: .visible .entry kiln_gemm_mma_q4_0_split_256x256_m16(
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX: bar.sync
// PTX: .target sm_80
// PTX: .visible .entry kiln_gemm_mma_q4_0_split_256x256_m64(
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
func.func @mma_q4_0(%x: tensor<?x256xf32>) -> tensor<?x256xf32> attributes {kiln.max_tokens = 512} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 36864> -> !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

// Q8_0 (two planes of codes a row): a lane's two code words a block, sign
// bits flipped (xor 0x80808080 = -2139062144), bytes (0, 2) and (1, 3) put
// under 0x64 by prmt (selectors 0x4240 = 16960, 0x4341 = 17217), minus 1152.
// Steps of at most 32 tokens have no _m64 kernel; the bias and kiln-fuse's
// residual are added where the tile is stored. Q4_1 (a min a block) has no
// GEMM: its prefill stays on the 4-token GEMV.
// CHECK-LABEL: func.func @mma_q8_0_bias_residual(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q8_0_split_64x512_bias_residual", "kiln_gemm_mma_q8_0_split_64x512_bias_residual_m16", "kiln_gemv_q8_0_split_64x512_bias_residual_t4", "kiln_gemv_q4_1_split_64x512", "kiln_gemv_q4_1_split_64x512_t4"]
// CHECK-NOT: arith.cmpi uge, %{{.*}}, %c64
// CHECK: gpu.func @kiln_gemm_mma_q8_0_split_64x512_bias_residual_m16(
// CHECK: arith.constant dense<1.152000e+03> : vector<2xf16>
// CHECK: arith.xori %{{.*}}, %c-2139062144_i32 : i32
// CHECK: nvvm.prmt <default> %c16960_i32, %{{.*}}, %c1684300900_i32 : i32
// CHECK: nvvm.prmt <default> %c17217_i32, %{{.*}}, %c1684300900_i32 : i32
// CHECK: nvvm.mma.sync
// CHECK: gpu.barrier
// CHECK: %[[BIAS:.*]] = memref.load {{.*}} : memref<274877906944xf32>
// CHECK: %[[SUM:.*]] = arith.addf %{{.*}}, %[[BIAS]] : f32
// CHECK: %[[RES:.*]] = memref.load {{.*}} : memref<274877906944xf32>
// CHECK: %[[OUT:.*]] = arith.addf %[[SUM]], %[[RES]] : f32
// CHECK: memref.store %[[OUT]]
// CHECK-NOT: gpu.func @kiln_gemm_mma_q4_1
func.func @mma_q8_0_bias_residual(%x: tensor<?x512xf32>, %r: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) attributes {kiln.max_tokens = 32} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 34816> -> !kiln.weight<64x512x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %b = kiln.weight #kiln.external<"w.bin", offset = 34816, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.linear %x, %w, bias %b : tensor<?x512xf32>, !kiln.weight<64x512x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %z = kiln.add %y, %r : tensor<?x64xf32>
  %v = kiln.weight #kiln.external<"w.bin", offset = 35072, size = 20480> -> !kiln.weight<64x512x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %u = kiln.linear %x, %v : tensor<?x512xf32>, !kiln.weight<64x512x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  return %z, %u : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Steps of fewer than 16 tokens never reach the GEMM: no kernel for it.
// CHECK-LABEL: func.func @few_tokens(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_0_split_256x256", "kiln_gemv_q4_0_split_256x256_t4"]
// CHECK-NOT: arith.cmpi uge
func.func @few_tokens(%x: tensor<?x256xf32>) -> tensor<?x256xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 36864> -> !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
