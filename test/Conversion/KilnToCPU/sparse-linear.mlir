// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 | FileCheck %s --check-prefixes=CHECK,V4 --implicit-check-not=llvm.x86.avx2
// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v3 | FileCheck %s --check-prefixes=CHECK,V3 --implicit-check-not=vpdpbusd
// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=generic | FileCheck %s --check-prefixes=CHECK,GENERIC --implicit-check-not=llvm.call_intrinsic

// The sparse linear kernels (SparseLinear.cpp) for each instruction set.
// 2:4: the activation bytes the kept codes' positions pick (vpshufb on
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


// Lane r is row r of a group of 16, its 4 bytes two runs of 4 values; a
// tile of 8 tokens shares the decoded codes and positions. The blocks loop
// carries where the next block starts (the one loop of both formats).
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q4_0_2of4_64x64(
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, index)
// CHECK: memref.prefetch
// Q4_0: row r's kept pairs of runs 2p and 2p+1 (byte r of each) become lane
// r's bytes [first, second, first', second'], minus 8.
// CHECK: %[[PAIRS:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// CHECK: %[[WIDE:.*]] = arith.extui %[[PAIRS]] : vector<16xi8> to vector<16xi32>
// CHECK: arith.shli %[[WIDE]], %{{.*}} : vector<16xi32>
// CHECK: %[[PAIRS2:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// CHECK: %[[WIDE2:.*]] = arith.extui %[[PAIRS2]] : vector<16xi8> to vector<16xi32>
// CHECK: %[[CODES:.*]] = arith.subi %{{.*}}, %{{.*}} : vector<64xi8>
// The positions: lane r's bytes [i0, i1, 4 + i2, 4 + i3] into the two runs'
// 8 activation bytes.
// CHECK: %[[PLACES:.*]] = vector.bitcast %{{.*}} : vector<16xi32> to vector<64xi8>
// 128 * (sum of the codes), taken off the products of x + 128.
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %{{.*}}, %[[CODES]])
// The two runs' 8 activation bytes, broadcast to every 8 bytes.
// CHECK: vector.broadcast %{{.*}} : i64 to vector<8xi64>
// CHECK: arith.xori %{{.*}}, %{{.*}} : vector<64xi8>
// V4: %[[X:.*]] = llvm.call_intrinsic "llvm.x86.avx512.pshuf.b.512"(%{{.*}}, %[[PLACES]]) : (vector<64xi8>, vector<64xi8>) -> vector<64xi8>
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[X]], %[[CODES]])
// V3: llvm.call_intrinsic "llvm.x86.avx2.pshuf.b"
// V3: llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// GENERIC: arith.cmpi eq, %[[PLACES]], %{{.*}} : vector<64xi8>
// GENERIC: arith.muli %{{.*}}, %{{.*}} : vector<64xi32>
// CHECK: arith.subi %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK: arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>

// Q8_0: row r's kept pair (bytes 2r, 2r+1) zero-extended to lane r.
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q8_0_2of4_128x32(
// CHECK: %[[PAIRS8:.*]] = vector.bitcast %{{.*}} : vector<32xi8> to vector<16xi16>
// CHECK: arith.extui %[[PAIRS8]] : vector<16xi16> to vector<16xi32>

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
