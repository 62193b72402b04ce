// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s --implicit-check-not=math.exp --implicit-check-not=math.tanh

// The attention kernel's emitted IR: append K and V to the f32 cache, a
// barrier, then one (token, head) at a time an online softmax over chunks
// of 16 positions. convert-kiln-to-cpu replaces math.exp and math.tanh by
// polynomials (no libm call per lane): none may remain.

// Layer 1 of a [2 layers, 64 positions, 1 KV head, head_dim 32] cache:
// keys of layer 1 start at float 1 * 64 * 32 = 2048, values at
// 2 * 64 * 32 + 2048 = 6144. Sliding window 16, softcap 50, scale 1/8.
// CHECK-LABEL: func.func @attention(
// CHECK-SAME: %[[CACHE:[^:]*]]: memref<?xi8>, %[[POS:[^:]*]]: index
// CHECK-SAME: %[[RT:[^:]*]]: !llvm.ptr
// CHECK: call @kiln_attention_h4_kv1_d32_L2_c64_l1_w16_causal_capped(%{{.*}}, %{{.*}}, %{{.*}}, %[[CACHE]], %[[POS]], %{{.*}}, %[[RT]], %{{.*}}, %{{.*}})
// CHECK-NEXT: call @kiln_barrier(%[[RT]])
// CHECK-LABEL: func.func private @kiln_attention_h4_kv1_d32_L2_c64_l1_w16_causal_capped(
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK-DAG: %[[C2048:.*]] = arith.constant 2048 : index
// CHECK-DAG: %[[C6144:.*]] = arith.constant 6144 : index
// CHECK-DAG: %[[LAST:.*]] = arith.constant 63 : index
// CHECK-DAG: %[[SCALE:.*]] = arith.constant dense<1.250000e-01> : vector<16xf32>
// CHECK-DAG: %[[CAP:.*]] = arith.constant dense<5.000000e+01> : vector<16xf32>
// CHECK-DAG: %[[LANES:.*]] = arith.constant dense<[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]> : vector<16xindex>
// CHECK: %[[VIEW:.*]] = memref.view %{{.*}}[%{{.*}}][%{{.*}}] : memref<?xi8> to memref<?xf32>
// 1. Append: positions past the context are dropped.
// CHECK: scf.for
// CHECK: %[[P:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK: %[[IN:.*]] = arith.cmpi ult, %[[P]], %[[C64]] : index
// CHECK: scf.if %[[IN]]
// CHECK: %[[KV:.*]] = vector.load %{{.*}} : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[KROW:.*]] = arith.addi %{{.*}}, %[[C2048]] : index
// CHECK: vector.store %[[KV]], %[[VIEW]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: %[[VV:.*]] = vector.load %{{.*}} : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: arith.addi %{{.*}}, %[[C6144]] : index
// CHECK: vector.store %[[VV]], %[[VIEW]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: call @kiln_barrier(%{{.*}}) : (!llvm.ptr) -> ()
// 2. Causal end (position + t + 1, at most the context), window start.
// CHECK: %[[END:.*]] = arith.minui %{{.*}}, %[[C64]] : index
// CHECK: %[[WIDE:.*]] = arith.cmpi uge, %[[END]], %[[C16]] : index
// CHECK: %[[FROM:.*]] = arith.subi %[[END]], %[[C16]] : index
// CHECK: %[[START:.*]] = arith.select %[[WIDE]], %[[FROM]], %{{.*}} : index
// Running max, running sum and head_dim / 16 = 2 accumulators.
// CHECK: scf.for %[[J:.*]] = %[[START]] to %[[END]] step %[[C16]] iter_args(%[[M:.*]] = %{{.*}}, %[[L:.*]] = %{{.*}}, %[[ACC0:.*]] = %{{.*}}, %[[ACC1:.*]] = %{{.*}}) -> (f32, f32, vector<16xf32>, vector<16xf32>)
// CHECK: %[[JV:.*]] = vector.broadcast %[[J]] : index to vector<16xindex>
// CHECK: %[[JS:.*]] = arith.addi %[[JV]], %[[LANES]] : vector<16xindex>
// CHECK: %[[ENDV:.*]] = vector.broadcast %[[END]] : index to vector<16xindex>
// CHECK: %[[VALID:.*]] = arith.cmpi ult, %[[JS]], %[[ENDV]] : vector<16xindex>
// Rows past the end read a clamped, valid cache row.
// CHECK: %[[ROW:.*]] = arith.minui %[[J]], %[[LAST]] : index
// CHECK: vector.load %[[VIEW]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: %[[DOT:.*]] = vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: vector.insert %[[DOT]], %{{.*}} [0] : f32 into vector<16xf32>
// CHECK: %[[S15:.*]] = vector.insert %{{.*}}, %{{.*}} [15] : f32 into vector<16xf32>
// CHECK: %[[SCALED:.*]] = arith.mulf %[[S15]], %[[SCALE]] : vector<16xf32>
// Softcap: cap * tanh(s / cap), tanh as a rational polynomial.
// CHECK: %[[T:.*]] = arith.divf %[[SCALED]], %[[CAP]] : vector<16xf32>
// CHECK: math.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: %[[TANH:.*]] = arith.select %{{.*}}, %{{.*}}, %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: %[[CAPPED:.*]] = arith.mulf %[[TANH]], %[[CAP]] : vector<16xf32>
// CHECK: %[[MASKED:.*]] = arith.select %[[VALID]], %[[CAPPED]], %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: %[[CMAX:.*]] = vector.reduction <maximumf>, %[[MASKED]] : vector<16xf32> into f32
// CHECK: %[[NEWM:.*]] = arith.maximumf %[[M]], %[[CMAX]] : f32
// exp(m - m') as a scalar polynomial (floor, 2^n through the exponent bits).
// CHECK: arith.subf %[[M]], %[[NEWM]] : f32
// CHECK: math.floor %{{.*}} : f32
// CHECK: %[[TWON:.*]] = arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[CORR:.*]] = arith.mulf %{{.*}}, %[[TWON]] : f32
// exp(s - m') on 16 lanes.
// CHECK: %[[MV:.*]] = vector.broadcast %[[NEWM]] : f32 to vector<16xf32>
// CHECK: arith.subf %[[MASKED]], %[[MV]] : vector<16xf32>
// CHECK: math.floor %{{.*}} : vector<16xf32>
// CHECK: arith.shli %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK: %[[TWONV:.*]] = arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: %[[PEXP:.*]] = arith.mulf %{{.*}}, %[[TWONV]] : vector<16xf32>
// CHECK: %[[PROB:.*]] = arith.select %[[VALID]], %[[PEXP]], %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: arith.mulf %[[L]], %[[CORR]] : f32
// CHECK: vector.reduction <add>, %[[PROB]] : vector<16xf32> into f32
// CHECK: %[[CORRV:.*]] = vector.broadcast %[[CORR]] : f32 to vector<16xf32>
// CHECK: %[[R0:.*]] = arith.mulf %[[ACC0]], %[[CORRV]] : vector<16xf32>
// CHECK: arith.mulf %[[ACC1]], %[[CORRV]] : vector<16xf32>
// CHECK: %[[P0:.*]] = vector.extract %[[PROB]][0] : f32 from vector<16xf32>
// CHECK: %[[P0V:.*]] = vector.broadcast %[[P0]] : f32 to vector<16xf32>
// CHECK: %[[VROW:.*]] = arith.muli %[[ROW]], %{{.*}} : index
// CHECK: arith.addi %[[VROW]], %[[C6144]] : index
// CHECK: %[[V0:.*]] = vector.load %[[VIEW]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: vector.fma %[[P0V]], %[[V0]], %[[R0]] : vector<16xf32>
// CHECK: vector.extract %[[PROB]][15] : f32 from vector<16xf32>
// CHECK: scf.yield %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, vector<16xf32>, vector<16xf32>
// Normalise by 1 / sum.
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
// CHECK: vector.store %{{.*}}, %{{.*}} : memref<?x128xf32, strided<[128, 1], offset: ?>>, vector<16xf32>
func.func @attention(%q: tensor<?x128xf32>, %k: tensor<?x32xf32>, %v: tensor<?x32xf32>, %cache: !kiln.kv_cache<2x64x1x32xf32>, %pos: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 1, num_heads = 4, scale = 0.125 : f32, sliding_window = 16, softcap = 50.0 : f32} : tensor<?x128xf32>, tensor<?x32xf32>, tensor<?x32xf32>, !kiln.kv_cache<2x64x1x32xf32> -> tensor<?x128xf32>
  return %a : tensor<?x128xf32>
}

// -----

// Not causal, no window, no softcap: every query sees positions
// [0, position + tokens); no tanh polynomial (math.absf), no window select.
// CHECK-LABEL: func.func private @kiln_attention_h2_kv2_d16_L1_c32_l0_w0_full(
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK: %[[TOKENS:.*]] = memref.dim %{{.*}}, %[[C0]]
// CHECK: call @kiln_barrier
// CHECK: %[[SEEN:.*]] = arith.addi %{{.*}}, %[[TOKENS]] : index
// CHECK: %[[END:.*]] = arith.minui %[[SEEN]], %[[C32]] : index
// CHECK-NOT: arith.cmpi uge
// CHECK: scf.for %{{.*}} = %[[C0]] to %[[END]] step %{{.*}} iter_args({{.*}}) -> (f32, f32, vector<16xf32>)
// CHECK-NOT: math.absf
// CHECK: vector.reduction <maximumf>
// CHECK: scf.yield
func.func @full(%q: tensor<?x32xf32>, %k: tensor<?x32xf32>, %v: tensor<?x32xf32>, %cache: !kiln.kv_cache<1x32x2x16xf32>, %pos: index) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 0, num_heads = 2, scale = 0.25 : f32, causal = false} : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>, !kiln.kv_cache<1x32x2x16xf32> -> tensor<?x32xf32>
  return %a : tensor<?x32xf32>
}

// -----

// A step over several sequences: rope tables from each token's position,
// and the attention kernel variant that reads each token's slot and
// position. The cache holds one [2, 2, 64, 1, 32] f32 cache (8192 floats,
// 32768 bytes) per slot; slots past the buffer are neither written nor read.
// CHECK-LABEL: func.func @per_sequence(
// CHECK-SAME: %[[CACHE:[^:]*]]: memref<?xi8>, %[[SLOTS:[^:]*]]: memref<?xi32>, %[[POSITIONS:[^:]*]]: memref<?xi32>
// CHECK: %[[P:.*]] = memref.cast %[[POSITIONS]]
// CHECK: call @kiln_rope_table_per_token_llama_0x0_r32_b10000_s1000000(%[[P]],
// CHECK: call @kiln_attention_h4_kv1_d32_L2_c64_l1_w0_causal_per_sequence(%{{.*}}, %{{.*}}, %{{.*}}, %[[CACHE]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK-LABEL: func.func private @kiln_rope_table_per_token_llama_0x0_r32_b10000_s1000000(
// CHECK: %[[POS:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xi32, strided<[1], offset: ?>>
// CHECK: arith.index_castui %[[POS]] : i32 to index
// CHECK-LABEL: func.func private @kiln_attention_h4_kv1_d32_L2_c64_l1_w0_causal_per_sequence(
// CHECK-SAME: %[[KBYTES:[^:]*]]: memref<?xi8>, %[[KSLOTS:[^:]*]]: memref<?xi32, strided<[1], offset: ?>>, %[[KPOS:[^:]*]]: memref<?xi32, strided<[1], offset: ?>>
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK-DAG: %[[SEQ:.*]] = arith.constant 8192 : index
// CHECK-DAG: %[[SEQBYTES:.*]] = arith.constant 32768 : index
// CHECK: %[[BYTES:.*]] = memref.dim %[[KBYTES]]
// CHECK: %[[NSLOTS:.*]] = arith.divui %[[BYTES]], %[[SEQBYTES]] : index
// 1. Append at the token's position of the token's slot.
// CHECK: scf.for %[[T:.*]] =
// CHECK: memref.load %[[KPOS]][%[[T]]]
// CHECK: %[[SLOTRAW:.*]] = memref.load %[[KSLOTS]][%[[T]]]
// CHECK: %[[SLOT:.*]] = arith.index_castui %[[SLOTRAW]] : i32 to index
// CHECK: %[[BASE:.*]] = arith.muli %[[SLOT]], %[[SEQ]] : index
// CHECK: %[[INCTX:.*]] = arith.cmpi ult, %{{.*}}, %[[C64]] : index
// CHECK: %[[INBUF:.*]] = arith.cmpi ult, %{{.*}}, %[[NSLOTS]] : index
// CHECK: %[[IN:.*]] = arith.andi %[[INCTX]], %[[INBUF]] : i1
// CHECK: scf.if %[[IN]]
// CHECK: arith.addi %[[BASE]], %{{.*}} : index
// CHECK: call @kiln_barrier
// 2. Attend over [0, position + 1) of the token's slot; nothing outside.
// CHECK: memref.load %[[KSLOTS]]
// CHECK: memref.load %[[KPOS]]
// CHECK: %[[END:.*]] = arith.minui %{{.*}}, %[[C64]] : index
// CHECK: %[[OK:.*]] = arith.cmpi ult, %{{.*}}, %[[NSLOTS]] : index
// CHECK: %[[SEEN:.*]] = arith.select %[[OK]], %[[END]], %{{.*}} : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[SEEN]] step
func.func @per_sequence(%q: tensor<?x128xf32>, %k: tensor<?x32xf32>, %v: tensor<?x32xf32>, %cache: !kiln.kv_cache<2x64x1x32xf32>, %s: tensor<?xi32>, %p: tensor<?xi32>) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %r = kiln.rope %q, positions %p : tensor<?xi32> {num_heads = 4, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  %a = kiln.attention %r, %k, %v, %cache[slots %s, positions %p : tensor<?xi32>, tensor<?xi32>] {layer = 1, num_heads = 4, scale = 0.125 : f32} : tensor<?x128xf32>, tensor<?x32xf32>, tensor<?x32xf32>, !kiln.kv_cache<2x64x1x32xf32> -> tensor<?x128xf32>
  return %a : tensor<?x128xf32>
}
