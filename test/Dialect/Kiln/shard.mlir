// RUN: kiln-opt %s --kiln-shard=pp=2 | FileCheck %s --check-prefix=PP
// RUN: kiln-opt %s --kiln-shard=tp=2 | FileCheck %s --check-prefix=TP
// RUN: kiln-opt %s --kiln-shard=tp=2 | kiln-opt | FileCheck %s --check-prefix=TP
// RUN: kiln-opt %s --kiln-shard=dp=2 | FileCheck %s --check-prefix=DP
// RUN: not kiln-opt %s --kiln-shard=pp=3 2>&1 | FileCheck %s --check-prefix=PP3
// RUN: not kiln-opt %s --kiln-shard=tp=3 2>&1 | FileCheck %s --check-prefix=TP3
// RUN: kiln-opt %s --kiln-shard="tp=2 pp=2" | FileCheck %s --check-prefix=BOTH

// A two-layer decoder as the importer builds it (d = 4, two heads of two
// with two KV heads, MLP of 4, vocabulary 8, tied output head; weight values
// count up so that every slice differs).

// Pipeline: rank 0 embeds and runs layer 0, sends the hidden state to rank
// 1 and receives the logits from it; rank 1 runs layer 1 and the head and
// sends the logits back.
// PP-LABEL: func.func @forward_rank0(
// PP-SAME: %{{.*}}: tensor<?xi32>, %{{.*}}: index, %{{.*}}: !kiln.kv_cache<2x16x2x2xf32>, %[[L:arg[0-9]+]]: tensor<?x8xf32>)
// PP: kiln.embedding
// PP: kiln.attention {{.*}}layer = 0
// PP-NOT: layer = 1
// PP: kiln.swiglu
// PP: %[[X:.*]] = kiln.add
// PP-NEXT: kiln.send %[[X]] to 1 : tensor<?x4xf32>
// PP-NOT: kiln.linear
// PP: %[[Y:.*]] = kiln.recv from 1 rows(%[[L]]) : tensor<?x8xf32> -> tensor<?x8xf32>
// PP-NEXT: return %[[Y]]
// PP-LABEL: func.func @forward_rank1(
// PP-SAME: %[[T:arg[0-9]+]]: tensor<?xi32>,
// PP-NEXT: %[[H:.*]] = kiln.recv from 0 rows(%[[T]]) : tensor<?xi32> -> tensor<?x4xf32>
// PP-NOT: kiln.embedding
// PP-NOT: layer = 0
// PP: kiln.rms_norm %[[H]]
// PP: kiln.attention {{.*}}layer = 1
// PP: %[[Y:.*]] = kiln.linear {{.*}} -> tensor<?x8xf32>
// PP-NEXT: kiln.send %[[Y]] to 0 : tensor<?x8xf32>
// PP-NEXT: return %[[Y]]
// PP-NOT: func.func @forward(

// Tensor parallel: each rank has one of the two KV heads (and its query
// head), half the MLP, a KV cache of one head, and an all-reduce after the
// output and down projections; norms, embedding and head stay whole.
// TP-LABEL: func.func @forward_rank0(%{{.*}}: tensor<?xi32>, %{{.*}}: index, %{{.*}}: !kiln.kv_cache<2x16x1x2xf32>
// TP: kiln.embedding {{.*}} : !kiln.weight<8x4xf32>
// TP: kiln.linear {{.*}} : tensor<?x4xf32>, !kiln.weight<2x4xf32> -> tensor<?x2xf32>
// TP: kiln.rope {{.*}}num_heads = 1
// TP: kiln.attention {{.*}}num_heads = 1
// TP: %[[O:.*]] = kiln.linear {{.*}} : tensor<?x2xf32>, !kiln.weight<4x2xf32> -> tensor<?x4xf32>
// TP-NEXT: %[[S:.*]] = kiln.all_reduce %[[O]] : tensor<?x4xf32>
// TP-NEXT: kiln.add %{{.*}}, %[[S]]
// TP: kiln.swiglu {{.*}} : tensor<?x2xf32>
// TP: %[[D:.*]] = kiln.linear {{.*}} : tensor<?x2xf32>, !kiln.weight<4x2xf32> -> tensor<?x4xf32>
// TP-NEXT: %[[S2:.*]] = kiln.all_reduce %[[D]] : tensor<?x4xf32>
// TP-NEXT: kiln.add %{{.*}}, %[[S2]]
// TP: kiln.linear {{.*}} : tensor<?x4xf32>, !kiln.weight<8x4xf32> -> tensor<?x8xf32>
// TP-LABEL: func.func @forward_rank1(
// TP-SAME: !kiln.kv_cache<2x16x1x2xf32>
// TP-COUNT-4: kiln.all_reduce
// TP-NOT: func.func @forward(

// Data parallel replicates the model: nothing to split.
// DP-LABEL: func.func @forward(
// DP-NOT: kiln.all_reduce
// DP-NOT: kiln.send

// PP3: error: 'func.func' op has 2 layers: too few for 3 pipeline stages
// TP3: error: 'func.func' op has 2 KV heads: too few to split over 3 tensor-parallel ranks

// TP and PP together: group rank stage * 2 + t is TP rank t of the stage;
// it sends to and receives from TP rank t of the other stage, and its
// all-reduces (over the stage's TP ranks) stay in its layers.
// BOTH-LABEL: func.func @forward_rank0(%{{.*}}: tensor<?xi32>, %{{.*}}: index, %{{.*}}: !kiln.kv_cache<2x16x1x2xf32>
// BOTH: kiln.attention {{.*}}layer = 0 : i64, num_heads = 1
// BOTH-COUNT-2: kiln.all_reduce
// BOTH: kiln.send %{{.*}} to 2 : tensor<?x4xf32>
// BOTH: kiln.recv from 2 rows
// BOTH-NOT: kiln.attention
// BOTH-LABEL: func.func @forward_rank2(
// BOTH: kiln.recv from 0 rows(%{{.*}}) : tensor<?xi32> -> tensor<?x4xf32>
// BOTH: kiln.attention {{.*}}layer = 1 : i64, num_heads = 1
// BOTH-COUNT-2: kiln.all_reduce
// BOTH: kiln.send %{{.*}} to 0 : tensor<?x8xf32>
// BOTH-LABEL: func.func @forward_rank1(
// BOTH: kiln.send %{{.*}} to 3 : tensor<?x4xf32>
// BOTH: kiln.recv from 3 rows
// BOTH-LABEL: func.func @forward_rank3(
// BOTH: kiln.recv from 1 rows
// BOTH: kiln.send %{{.*}} to 1 : tensor<?x8xf32>
// BOTH-NOT: func.func @forward_tp

!cache = !kiln.kv_cache<2x16x2x2xf32>
func.func @forward(%tokens: tensor<?xi32>, %pos: index, %cache: !cache, %logits: tensor<?x8xf32>) -> tensor<?x8xf32> attributes {kiln.max_tokens = 4 : i64, kiln.tied_results = [3]} {
  %embd = kiln.weight dense<[0.0000, 0.0625, 0.1250, 0.1875, 0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625, 1.6250, 1.6875, 1.7500, 1.8125, 1.8750, 1.9375]> : tensor<32xf32> -> !kiln.weight<8x4xf32>
  %out_norm = kiln.weight dense<[0.0625, 0.1250, 0.1875, 0.2500]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %x0 = kiln.embedding %embd[%tokens] : !kiln.weight<8x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %l0_attn_norm = kiln.weight dense<[0.1250, 0.1875, 0.2500, 0.3125]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %l0_wq = kiln.weight dense<[0.1875, 0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_wk = kiln.weight dense<[0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_wv = kiln.weight dense<[0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_wo = kiln.weight dense<[0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_ffn_norm = kiln.weight dense<[0.4375, 0.5000, 0.5625, 0.6250]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %l0_wg = kiln.weight dense<[0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_wu = kiln.weight dense<[0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_wd = kiln.weight dense<[0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l0_h = kiln.rms_norm %x0, %l0_attn_norm {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %l0_q = kiln.linear %l0_h, %l0_wq : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_k = kiln.linear %l0_h, %l0_wk : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_v = kiln.linear %l0_h, %l0_wv : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_qr = kiln.rope %l0_q, %pos {num_heads = 2, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x4xf32> -> tensor<?x4xf32>
  %l0_kr = kiln.rope %l0_k, %pos {num_heads = 2, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x4xf32> -> tensor<?x4xf32>
  %l0_a = kiln.attention %l0_qr, %l0_kr, %l0_v, %cache[%pos] {layer = 0, num_heads = 2, scale = 0.7 : f32} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, !cache -> tensor<?x4xf32>
  %l0_o = kiln.linear %l0_a, %l0_wo : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_r = kiln.add %x0, %l0_o : tensor<?x4xf32>
  %l0_h2 = kiln.rms_norm %l0_r, %l0_ffn_norm {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %l0_g = kiln.linear %l0_h2, %l0_wg : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_u = kiln.linear %l0_h2, %l0_wu : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_s = kiln.swiglu %l0_g, %l0_u : tensor<?x4xf32>
  %l0_dn = kiln.linear %l0_s, %l0_wd : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l0_x = kiln.add %l0_r, %l0_dn : tensor<?x4xf32>
  %l1_attn_norm = kiln.weight dense<[0.1875, 0.2500, 0.3125, 0.3750]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %l1_wq = kiln.weight dense<[0.2500, 0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_wk = kiln.weight dense<[0.3125, 0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_wv = kiln.weight dense<[0.3750, 0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_wo = kiln.weight dense<[0.4375, 0.5000, 0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_ffn_norm = kiln.weight dense<[0.5000, 0.5625, 0.6250, 0.6875]> : tensor<4xf32> -> !kiln.weight<4xf32>
  %l1_wg = kiln.weight dense<[0.5625, 0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_wu = kiln.weight dense<[0.6250, 0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_wd = kiln.weight dense<[0.6875, 0.7500, 0.8125, 0.8750, 0.9375, 1.0000, 1.0625, 1.1250, 1.1875, 1.2500, 1.3125, 1.3750, 1.4375, 1.5000, 1.5625, 1.6250]> : tensor<16xf32> -> !kiln.weight<4x4xf32>
  %l1_h = kiln.rms_norm %l0_x, %l1_attn_norm {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %l1_q = kiln.linear %l1_h, %l1_wq : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_k = kiln.linear %l1_h, %l1_wk : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_v = kiln.linear %l1_h, %l1_wv : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_qr = kiln.rope %l1_q, %pos {num_heads = 2, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x4xf32> -> tensor<?x4xf32>
  %l1_kr = kiln.rope %l1_k, %pos {num_heads = 2, head_dim = 2, rotary_dim = 2, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x4xf32> -> tensor<?x4xf32>
  %l1_a = kiln.attention %l1_qr, %l1_kr, %l1_v, %cache[%pos] {layer = 1, num_heads = 2, scale = 0.7 : f32} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, !cache -> tensor<?x4xf32>
  %l1_o = kiln.linear %l1_a, %l1_wo : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_r = kiln.add %l0_x, %l1_o : tensor<?x4xf32>
  %l1_h2 = kiln.rms_norm %l1_r, %l1_ffn_norm {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %l1_g = kiln.linear %l1_h2, %l1_wg : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_u = kiln.linear %l1_h2, %l1_wu : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_s = kiln.swiglu %l1_g, %l1_u : tensor<?x4xf32>
  %l1_dn = kiln.linear %l1_s, %l1_wd : tensor<?x4xf32>, !kiln.weight<4x4xf32> -> tensor<?x4xf32>
  %l1_x = kiln.add %l1_r, %l1_dn : tensor<?x4xf32>
  %c0 = arith.constant 0 : index
  %total = tensor.dim %l1_x, %c0 : tensor<?x4xf32>
  %wanted = tensor.dim %logits, %c0 : tensor<?x8xf32>
  %first = arith.subi %total, %wanted : index
  %last = tensor.extract_slice %l1_x[%first, 0] [%wanted, 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
  %n = kiln.rms_norm %last, %out_norm {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, !kiln.weight<4xf32> -> tensor<?x4xf32>
  %y = kiln.linear %n, %embd : tensor<?x4xf32>, !kiln.weight<8x4xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
