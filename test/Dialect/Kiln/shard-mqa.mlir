// RUN: kiln-opt %s --kiln-shard=tp=2 | FileCheck %s
// RUN: kiln-opt %s --kiln-shard=tp=2 | kiln-opt | FileCheck %s

// Gemma 3's attention under tensor parallelism: one KV head (computed whole
// by every rank, whose KV cache keeps it), the query heads split with their
// per-head norm (whose reshape reads the row count with tensor.dim), and the
// all-reduce before the post-attention norm.
// CHECK-LABEL: func.func @forward_rank0(%{{.*}}: tensor<?xi32>, %{{.*}}: index, %{{.*}}: !kiln.kv_cache<1x16x1x2xf32>
// CHECK: %[[Q:.*]] = kiln.linear {{.*}} : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
// CHECK: kiln.linear {{.*}} : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
// CHECK: kiln.linear {{.*}} : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
// CHECK: %[[ROWS:.*]] = tensor.dim %[[Q]]
// CHECK: tensor.expand_shape %[[Q]] {{.*}} output_shape [%[[ROWS]], 1, 2] : tensor<?x2xf32> into tensor<?x1x2xf32>
// CHECK: kiln.rms_norm {{.*}} : tensor<?x1x2xf32>, !kiln.weight<2xf32> -> tensor<?x1x2xf32>
// CHECK: kiln.rope {{.*}}num_heads = 1
// CHECK: kiln.attention {{.*}}num_heads = 1 {{.*}} : tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, !kiln.kv_cache<1x16x1x2xf32> -> tensor<?x2xf32>
// CHECK: %[[O:.*]] = kiln.linear {{.*}} : tensor<?x2xf32>, !kiln.weight<4x2xf32> -> tensor<?x4xf32>
// CHECK-NEXT: %[[S:.*]] = kiln.all_reduce %[[O]] : tensor<?x4xf32>
// CHECK-NEXT: kiln.rms_norm %[[S]]
// CHECK: kiln.geglu {{.*}} : tensor<?x2xf32>
// CHECK: %[[D:.*]] = kiln.linear {{.*}} : tensor<?x2xf32>, !kiln.weight<4x2xf32> -> tensor<?x4xf32>
// CHECK-NEXT: %[[S2:.*]] = kiln.all_reduce %[[D]] : tensor<?x4xf32>
// CHECK-NEXT: kiln.rms_norm %[[S2]]
// CHECK-LABEL: func.func @forward_rank1(
// CHECK-SAME: !kiln.kv_cache<1x16x1x2xf32>
// CHECK-COUNT-2: kiln.all_reduce
// CHECK-NOT: func.func @forward(

!cache = !kiln.kv_cache<1x16x1x2xf32>
func.func @forward(%tokens: tensor<?xi32>, %pos: index, %cache: !cache, %logits: tensor<?x8xf32>) -> tensor<?x8xf32> attributes {kiln.max_tokens = 4 : i64, kiln.tied_results = [3]} {
  %embd = kiln.weight dense<[0.0000, 0.0625, 0.1250, 0.1875, 0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625, 1.6250, 1.6875, 1.7500, 1.8125, 1.8750, 1.9375]> : tensor<32xf32> -> !kiln.weight<8x4xf32>
  %norm4 = kiln.weight dense<[0.1250, 0.1875, 0.2500, 0.3125]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %norm2 = kiln.weight dense<[0.5000, 0.7500]> : tensor<2xf32> -> !kiln.weight<2xf32>
  %wq = kiln.weight dense<[0.1875, 0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %wk = kiln.weight dense<[0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875]> : tensor<8xf32> -> !kiln.weight<2x4xf32>
  %wv = kiln.weight dense<[0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500]> : tensor<8xf32> -> !kiln.weight<2x4xf32>
  %wo = kiln.weight dense<[0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %wg = kiln.weight dense<[0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %wu = kiln.weight dense<[0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %wd = kiln.weight dense<[0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %x0 = kiln.embedding %embd[%tokens] : !kiln.weight<8x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %h = kiln.rms_norm %x0, %norm4 {epsilon = 1.0e-6 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %q = kiln.linear %h, %wq : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %k = kiln.linear %h, %wk : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
  %v = kiln.linear %h, %wv : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
  %c0 = arith.constant 0 : index
  %rows = tensor.dim %q, %c0 : tensor<?x4xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%rows, 2, 2] : tensor<?x4xf32> into tensor<?x2x2xf32>
  %qn = kiln.rms_norm %q3, %norm2 {epsilon = 1.0e-6 : f32} : tensor<?x2x2xf32>, !kiln.weight<2xf32> -> tensor<?x2x2xf32>
  %q2 = tensor.collapse_shape %qn [[0], [1, 2]] : tensor<?x2x2xf32> into tensor<?x4xf32>
  %krows = tensor.dim %k, %c0 : tensor<?x2xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%krows, 1, 2] : tensor<?x2xf32> into tensor<?x1x2xf32>
  %kn = kiln.rms_norm %k3, %norm2 {epsilon = 1.0e-6 : f32} : tensor<?x1x2xf32>, !kiln.weight<2xf32> -> tensor<?x1x2xf32>
  %k2 = tensor.collapse_shape %kn [[0], [1, 2]] : tensor<?x1x2xf32> into tensor<?x2xf32>
  %qr = kiln.rope %q2, %pos {num_heads = 2, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x4xf32> -> tensor<?x4xf32>
  %kr = kiln.rope %k2, %pos {num_heads = 1, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x2xf32> -> tensor<?x2xf32>
  %a = kiln.attention %qr, %kr, %v, %cache[%pos] {layer = 0, num_heads = 2, scale = 0.7 : f32, sliding_window = 8 : i64} : tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xf32>, !cache -> tensor<?x4xf32>
  %o = kiln.linear %a, %wo : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %on = kiln.rms_norm %o, %norm4 {epsilon = 1.0e-6 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %r = kiln.add %x0, %on : tensor<?x4xf32>
  %h2 = kiln.rms_norm %r, %norm4 {epsilon = 1.0e-6 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %g = kiln.linear %h2, %wg : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %u = kiln.linear %h2, %wu : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %s = kiln.geglu %g, %u : tensor<?x4xf32>
  %dn = kiln.linear %s, %wd : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %dnn = kiln.rms_norm %dn, %norm4 {epsilon = 1.0e-6 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %x1 = kiln.add %r, %dnn : tensor<?x4xf32>
  %total = tensor.dim %x1, %c0 : tensor<?x4xf32>
  %wanted = tensor.dim %logits, %c0 : tensor<?x8xf32>
  %first = arith.subi %total, %wanted : index
  %last = tensor.extract_slice %x1[%first, 0] [%wanted, 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
  %n = kiln.rms_norm %last, %norm4 {epsilon = 1.0e-6 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %y = kiln.linear %n, %embd : tensor<?x4xf32>, !kiln.weight<8x4xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
