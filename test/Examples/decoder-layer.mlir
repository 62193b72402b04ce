// One Llama decoder layer in the kiln dialect (SmolLM2-135M's shapes, random
// inline weights elided to external ranges), as the importer emits it.
// RUN: kiln-opt %s --canonicalize --cse | kiln-opt | FileCheck %s

!q4_1 = !kiln.weight<576x576x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
!q4_1_kv = !kiln.weight<192x576x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
!q4_1_up = !kiln.weight<1536x576x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
!q4_1_down = !kiln.weight<576x1536x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
!norm = !kiln.weight<576xf32>
!cache = !kiln.kv_cache<30x2048x3x64xf32>

// CHECK-LABEL: func.func @decoder_layer
func.func @decoder_layer(%x: tensor<?x576xf32>, %pos: index, %cache: !cache) -> tensor<?x576xf32> {
  %attn_norm = kiln.weight #kiln.external<"model.gguf", offset = 0, size = 2304> -> !norm
  %wq = kiln.weight #kiln.external<"model.gguf", offset = 2304, size = 207360> -> !q4_1
  %wk = kiln.weight #kiln.external<"model.gguf", offset = 209664, size = 69120> -> !q4_1_kv
  %wv = kiln.weight #kiln.external<"model.gguf", offset = 278784, size = 69120> -> !q4_1_kv
  %wo = kiln.weight #kiln.external<"model.gguf", offset = 347904, size = 207360> -> !q4_1
  %ffn_norm = kiln.weight #kiln.external<"model.gguf", offset = 555264, size = 2304> -> !norm
  %wg = kiln.weight #kiln.external<"model.gguf", offset = 557568, size = 552960> -> !q4_1_up
  %wu = kiln.weight #kiln.external<"model.gguf", offset = 1110528, size = 552960> -> !q4_1_up
  %wd = kiln.weight #kiln.external<"model.gguf", offset = 1663488, size = 552960> -> !q4_1_down

  // CHECK: kiln.rms_norm
  %h = kiln.rms_norm %x, %attn_norm {epsilon = 1.0e-5 : f32} : tensor<?x576xf32>, !norm -> tensor<?x576xf32>
  // CHECK-COUNT-3: kiln.linear
  %q = kiln.linear %h, %wq : tensor<?x576xf32>, !q4_1 -> tensor<?x576xf32>
  %k = kiln.linear %h, %wk : tensor<?x576xf32>, !q4_1_kv -> tensor<?x192xf32>
  %v = kiln.linear %h, %wv : tensor<?x576xf32>, !q4_1_kv -> tensor<?x192xf32>
  // CHECK-COUNT-2: kiln.rope
  %qr = kiln.rope %q, %pos {num_heads = 9, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 100000.0 : f32} : tensor<?x576xf32> -> tensor<?x576xf32>
  %kr = kiln.rope %k, %pos {num_heads = 3, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 100000.0 : f32} : tensor<?x192xf32> -> tensor<?x192xf32>
  // CHECK: kiln.attention
  %a = kiln.attention %qr, %kr, %v, %cache[%pos] {layer = 0, num_heads = 9, scale = 0.125 : f32} : tensor<?x576xf32>, tensor<?x192xf32>, tensor<?x192xf32>, !cache -> tensor<?x576xf32>
  %o = kiln.linear %a, %wo : tensor<?x576xf32>, !q4_1 -> tensor<?x576xf32>
  // CHECK: kiln.add
  %r1 = kiln.add %x, %o : tensor<?x576xf32>
  %h2 = kiln.rms_norm %r1, %ffn_norm {epsilon = 1.0e-5 : f32} : tensor<?x576xf32>, !norm -> tensor<?x576xf32>
  %g = kiln.linear %h2, %wg : tensor<?x576xf32>, !q4_1_up -> tensor<?x1536xf32>
  %u = kiln.linear %h2, %wu : tensor<?x576xf32>, !q4_1_up -> tensor<?x1536xf32>
  // CHECK: kiln.swiglu
  %s = kiln.swiglu %g, %u : tensor<?x1536xf32>
  %d = kiln.linear %s, %wd : tensor<?x1536xf32>, !q4_1_down -> tensor<?x576xf32>
  %r2 = kiln.add %r1, %d : tensor<?x576xf32>
  return %r2 : tensor<?x576xf32>
}
