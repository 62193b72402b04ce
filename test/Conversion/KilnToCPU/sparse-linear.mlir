// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 | FileCheck %s --check-prefixes=CHECK,V4 --implicit-check-not=llvm.x86.avx2
// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v3 | FileCheck %s --check-prefixes=CHECK,V3 --implicit-check-not=vpdpbusd
// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=generic | FileCheck %s --check-prefixes=CHECK,GENERIC --implicit-check-not=llvm.call_intrinsic

// The sparse linear kernels (SparseLinear.cpp) for each instruction set.
// 2:4: the activation bytes the kept codes' places pick (vpshufb on
// AVX-512 and AVX2, selects for generic), then the variant's byte dot
// product. Bitmap: below.

!q4_0 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
!q8_0 = !kiln.weight<32x128x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>

// CHECK-LABEL: func.func @sparse_q4_0(
// CHECK: call @kiln_quantize_q8_64(
// CHECK-NEXT: call @kiln_barrier(
// V4: call @kiln_linear_q8_x86_64_v4_q4_0_2of4_64x64(
// V3: call @kiln_linear_q8_x86_64_v3_q4_0_2of4_64x64(
// GENERIC: call @kiln_linear_q8_generic_q4_0_2of4_64x64(
func.func @sparse_q4_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // 64 rows x 2 blocks x (2 + 8 + 4) bytes.
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1792> -> !q4_0
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @sparse_q8_0(
// V4: call @kiln_linear_q8_x86_64_v4_q8_0_2of4_128x32(
// V3: call @kiln_linear_q8_x86_64_v3_q8_0_2of4_128x32(
// GENERIC: call @kiln_linear_q8_generic_q8_0_2of4_128x32(
func.func @sparse_q8_0(%x: tensor<?x128xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  // 32 rows x 4 blocks x (2 + 16 + 4) bytes.
  %w = kiln.weight #kiln.external<"w.bin", offset = 1792, size = 2816> -> !q8_0
  %y = kiln.linear %x, %w : tensor<?x128xf32>, !q8_0 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// The bitmap kernel (unstructured sparsity, WeightLayout.h bitmapWeightBytes)
// for each instruction set: each 64-byte plane expanded from its kept codes
// by in-lane prefix sums of its keep bits and a byte shuffle, then the
// 2:4 kernel's loop and the variant's byte dot product.

!b4 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 2048>>
!b8 = !kiln.weight<32x128x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 2048>>

// CHECK-LABEL: func.func @bitmap_q4_0(
// V4: call @kiln_linear_q8_x86_64_v4_q4_0_bitmap_64x64(
// V3: call @kiln_linear_q8_x86_64_v3_q4_0_bitmap_64x64(
// GENERIC: call @kiln_linear_q8_generic_q4_0_bitmap_64x64(
func.func @bitmap_q4_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // 4 group offsets, 4 x 2 blocks x 96 bytes of scales and masks, 2048
  // nibbles, 16 bytes of padding.
  %w = kiln.weight #kiln.external<"w.bin", offset = 4608, size = 1840> -> !b4
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !b4 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @bitmap_q8_0(
// V4: call @kiln_linear_q8_x86_64_v4_q8_0_bitmap_128x32(
// V3: call @kiln_linear_q8_x86_64_v3_q8_0_bitmap_128x32(
// GENERIC: call @kiln_linear_q8_generic_q8_0_bitmap_128x32(
func.func @bitmap_q8_0(%x: tensor<?x128xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 6464, size = 2848> -> !b8
  %y = kiln.linear %x, %w : tensor<?x128xf32>, !b8 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}


// Lane r is row r of a group of 16, its 4 bytes the kept codes of two runs
// of 4 values (a target; WeightLayout.h's planes); a tile of 8 tokens
// shares the decoded codes and places. The blocks loop carries where the
// next block starts (the one loop of both formats).
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q4_0_2of4_64x64(
// V4-DAG: %[[ONES:.*]] = arith.constant dense<1> : vector<64xi8>
// CHECK-DAG: %[[SECOND:.*]] = vector.bitcast %{{.*}} : vector<16xi32> to vector<64xi8>
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, index)
// CHECK: memref.prefetch
// Target 0: code plane 0's low nibbles (unsigned, 8 the zero); its places
// bits 0..1 of the places plane, plus 4 in bytes 2 and 3 (the second run).
// CHECK: %[[PLANE0:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK: %[[CODES0:.*]] = arith.andi %[[PLANE0]], %{{.*}} : vector<64xi8>
// CHECK: %[[PLACES:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK: %[[FIELD0:.*]] = arith.andi %[[PLACES]], %{{.*}} : vector<64xi8>
// CHECK: %[[PLACES0:.*]] = arith.addi %[[FIELD0]], %[[SECOND]] : vector<64xi8>
// Target 1: code plane 1's low nibbles, places bits 2..3.
// CHECK: %[[PLANE1:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK-NEXT: arith.andi %[[PLANE1]], %{{.*}} : vector<64xi8>
// CHECK: arith.shrui %{{.*}}, %{{.*}} : vector<64xi8>
// CHECK-NEXT: arith.andi %{{.*}}, %{{.*}} : vector<64xi8>
// CHECK-NEXT: arith.addi %{{.*}}, %[[SECOND]] : vector<64xi8>
// Targets 2 and 3: the planes' high nibbles, no mask; target 3's places:
// bits 6..7, no mask.
// CHECK: %[[PLANE0B:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK-NEXT: arith.shrui %[[PLANE0B]], %{{.*}} : vector<64xi8>
// CHECK: arith.shrui %{{.*}}, %{{.*}} : vector<64xi8>
// CHECK-NEXT: arith.andi %{{.*}}, %{{.*}} : vector<64xi8>
// CHECK-NEXT: arith.addi %{{.*}}, %[[SECOND]] : vector<64xi8>
// CHECK: %[[PLANE1B:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK-NEXT: arith.shrui %[[PLANE1B]], %{{.*}} : vector<64xi8>
// CHECK: %[[PLACESB:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK-NEXT: %[[PLACES3:.*]] = arith.shrui %[[PLACESB]], %{{.*}} : vector<64xi8>
// CHECK-NEXT: arith.addi %[[PLACES3]], %[[SECOND]] : vector<64xi8>
// A token: each target's two runs' 8 activation bytes, broadcast to every
// 8 bytes; the places pick each row's 4.
// CHECK: vector.broadcast %{{.*}} : i64 to vector<8xi64>
// V4: %[[X0:.*]] = llvm.call_intrinsic "llvm.x86.avx512.pshuf.b.512"(%{{.*}}, %[[PLACES0]]) : (vector<64xi8>, vector<64xi8>) -> vector<64xi8>
// V3: llvm.call_intrinsic "llvm.x86.avx2.pshuf.b"
// GENERIC: arith.cmpi eq, %[[PLACES0]], %{{.*}} : vector<64xi8>
// The codes times the picked bytes, then a dot of ones with them: 8 times
// their sum is taken off (the codes' zero).
// V4: %[[D0:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[CODES0]], %[[X0]])
// V4-COUNT-3: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[ONES]], %[[X0]])
// V3-COUNT-4: llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// V3: llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"
// GENERIC: arith.muli %{{.*}}, %{{.*}} : vector<64xi32>
// CHECK: %[[TIMES8:.*]] = arith.muli %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK-NEXT: arith.subi %{{.*}}, %[[TIMES8]] : vector<16xi32>
// CHECK: arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>

// Q8_0: four code planes, one a target (the codes + 128, zero 128), read
// whole; on AVX2 split into nibbles for vpmaddubsw.
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q8_0_2of4_128x32(
// CHECK-COUNT-4: vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// V3: arith.shrui %{{.*}}, %{{.*}} : vector<64xi8>
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"

// A group of 16 rows starts where its offset (first in the weight) says;
// the blocks loop carries where the next block starts (after its kept
// codes, the popcounts of its masks).
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q8_0_bitmap_128x32(
// CHECK: %[[OFFSET:.*]] = vector.bitcast %{{.*}} : vector<8xi8> to vector<1xi64>
// CHECK: arith.index_castui %{{.*}} : i64 to index
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, index)
// CHECK: memref.prefetch
// As rows16: a token's sums start at -128 * (its block's activation code
// sums, record bytes 40 and 44).
// CHECK: %[[SUM:.*]] = arith.addi %{{.*}}, %{{.*}} : i32
// CHECK: %[[START:.*]] = arith.muli %[[SUM]], %{{.*}} : i32
// CHECK: %[[STARTS:.*]] = vector.broadcast %[[START]] : i32 to vector<16xi32>
// Plane 0: a quarter's kept codes at the running offset, the next quarter's
// after them.
// CHECK: %[[Q0:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// CHECK: math.ctpop %{{.*}} : i64
// CHECK: %[[Q1:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// CHECK: %[[LOW:.*]] = vector.shuffle %[[Q0]], %[[Q1]] [0, 1, 2,
// CHECK: %[[KEPT_CODES:.*]] = vector.shuffle %[[LOW]], %{{.*}} [0, 1, 2,
// Byte i takes mask byte i / 8 and keeps where bit i % 8 is set; its
// in-lane prefix sum minus one picks the code, 0x80 (zero) where not kept.
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
// CHECK: %[[KEPT:.*]] = arith.cmpi ne, %{{.*}}, %{{.*}} : vector<64xi8>
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [64, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 64, 16,
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [64, 64, 64, 64, 64, 64, 64, 64, 0, 1, 2, 3, 4, 5, 6, 7, 64,
// CHECK: %[[INDICES:.*]] = arith.select %[[KEPT]], %{{.*}}, %{{.*}} : vector<64xi1>, vector<64xi8>
// V4: %[[PLANE:.*]] = llvm.call_intrinsic "llvm.x86.avx512.pshuf.b.512"(%[[KEPT_CODES]], %[[INDICES]])
// V3: llvm.call_intrinsic "llvm.x86.avx2.pshuf.b"
// GENERIC: arith.select
// Q8_0's signed codes + 128, the rows16 operand (128 where not kept).
// CHECK: %[[CODES:.*]] = arith.xori %{{.*}}, %{{.*}} : vector<64xi8>
// A token: its 4 activation bytes of the plane, broadcast, times the codes;
// no second dot product per plane.
// CHECK: %[[X:.*]] = vector.broadcast %{{.*}} : i32 to vector<16xi32>
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[STARTS]], %[[CODES]], %{{.*}})
