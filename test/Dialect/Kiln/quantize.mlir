// RUN: kiln-opt %s --kiln-quantize | FileCheck %s
// RUN: kiln-opt %s --kiln-quantize | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --kiln-quantize="bits=8 format=gguf" | FileCheck %s --check-prefix=Q8
// RUN: kiln-opt %s --kiln-quantize="bits=3 group=0 symmetric=false scale-type=bf16" | FileCheck %s --check-prefix=CHANNEL

// Default: 4-bit, groups of 32, symmetric, f16 scales, Kiln's packed layout.
// The linear weights (one tied to an embedding) become blobs of the weight
// store named after their location, which print in dialect_resources and
// parse back (second RUN line); the norm weight stays float.
// CHECK-LABEL: func.func @layer
// CHECK: kiln.weight dense<{{.*}}> : tensor<32xf32> -> !kiln.weight<32xf32>
// CHECK: %[[W1:.*]] = kiln.weight dense_resource<w1> : tensor<36xi8> -> !kiln.weight<2x32x#kiln.quant<bits = 4, group = 32, scale = f16>>
// CHECK: kiln.rms_norm
// CHECK: kiln.linear %{{.*}}, %[[W1]]
// CHECK: %[[W2:.*]] = kiln.weight dense_resource<w2> : tensor<144xi8> -> !kiln.weight<4x64x#kiln.quant<bits = 4, group = 32, scale = f16>>
// CHECK: kiln.embedding %[[W2]][
// CHECK: kiln.linear %{{.*}}, %[[W2]]
// CHECK: w1: "0x40000000
// CHECK: w2: "0x40000000

// Q8_0 in ggml's blocks: w1's bytes are those of gguf-py's quantizer.
// Q8-LABEL: func.func @layer
// Q8: kiln.weight dense_resource<w1> : tensor<68xi8> -> !kiln.weight<2x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
// Q8: kiln.weight dense_resource<w2> : tensor<272xi8> -> !kiln.weight<4x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
// Q8: w1: "0x400000001325000FF2D3E9CE0344E7E1191205D1FF23BCE9A0BFA3F4C00E08F781E5FE06B3E80824C2CD43CDFE38DBF90704B205569E3708D77F30B40525F42BFC2A5BD50DE308B5"

// One group per row (K = 32 and 64), asymmetric, bf16 scales and zeros.
// CHANNEL-LABEL: func.func @layer
// CHANNEL: kiln.weight dense_resource<w1> : tensor<32xi8> -> !kiln.weight<2x32x#kiln.quant<bits = 3, group = 32, scale = bf16, zero = bf16>>
// CHANNEL: kiln.weight dense_resource<w2> : tensor<112xi8> -> !kiln.weight<4x64x#kiln.quant<bits = 3, group = 64, scale = bf16, zero = bf16>>

func.func @layer(%x: tensor<3x32xf32>, %ids: tensor<3xi32>) -> (tensor<3x2xf32>, tensor<3x4xf32>) {
  %n = kiln.weight dense<"0x0000803F0000003F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F"> : tensor<32xf32> -> !kiln.weight<32xf32>
  %w1 = kiln.weight dense<"0x193DA13A2DF5983ECC5B8CBED4FD63BF9CCAE8BE8CDC7DBF2359763D2C8CAB3F7E02FCBE71D71EBF94CCFA3EE5B9B63E6DE3D73D27336EBF85A1EFBC64FF313F390FACBF9D4CEABE445BF3BF930FA5BFF9BDEBBFBBBB70BEB03BA2BF29E38A3E5B83203ED36A3FBE971221C0C7E709BFEDA846BD8B0EE83D7DDBC3BF149CF4BE3A807ABFF50F4FBF87CB873F98BA4EBF7B3505BD6067623FD76615BFFEC3E4BD063BE23D05A0823DA1CE9CBF69EF9B3DEDEDAD3FD608C6BF81005C3FE26FF43D673724BFD30600407423433F4C8299BFF79B983DEEA1133F1A5041BE35D32E3F3C3A88BDBCD02A3F8221B83F34F82CBF9103503EA736EDBEA752023EFEF597BF"> : tensor<64xf32> -> !kiln.weight<2x32xf32> loc("w1")
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<3x32xf32>, !kiln.weight<32xf32> -> tensor<3x32xf32>
  %y = kiln.linear %h, %w1 : tensor<3x32xf32>, !kiln.weight<2x32xf32> -> tensor<3x2xf32>
  %w2 = kiln.weight dense<"0xA2B847B2313B953C4BBD5BBA2D39F8BF69B73AAE073D84393CB5E6B501B4183ED9B6DCB4A435BBAF50B275BCE6A119B7AA3C3A392EA6593970B5353C879DAB382ABD8C35C1BE12C0DFB433BB40317D40A7BAFEB89332E337A5B197B29F39293822BC11AD842838BC2834DDBAC73B2B32B72DBAB897AFFEBF87BCCE3542C0C63AFCBE0E3AC4BA3B3A313026BEFF3CC43D36AC62B41EB1CDBB653C58B88DAA59BA02B91CBD073DEEB0BA3BD2228EB93AB57BB8132001B6CCB484BD74BA9E3E5FB937BC6635A13DD1BDACB20EB90BBFE13900A6932C05BA473750B893B06FBCDDBC583D0FB8AB3453A80FB710B80A39D4B4D9B0B025B53C72391F3682B887BD993BBB3B81B05638403AA63A5F3B4AB70F3EFDBCE53AE737FD3A843FF03D95BCC1BE893A0FBC5AA2B83A93BE38C02634AE29DEB3EF28E2BA0EBE55B1C6BB93BE0C38DCAB8136EABB44B9FEBB18BB413244BAB23570350D4092BD1A3BBAAD2FA3CDBD5DB7F23947AD302DA7B49E3C7FA567C089B9E0BF81C23EB8563D082AB1BC87BB863C0B31252AD8AAEA28713A6C38E7322CBC173879B9603C16BD67B0899F4CBDE33ED73D6BB72C3A0F363AC10234DAAB532D4FBC4FB4B4B1C13C5A35B09D1E3E71B83BB644BF473EB73B563B5A390D2FE53208B484B2F32A0C3E72387CABA3B814B9693E0E38532C8AB570BC47ACFD3A48B646B313B3042F5FBE88B3D6BA143B"> : tensor<256xf16> -> !kiln.weight<4x64xf16> loc("w2")
  %e = kiln.embedding %w2[%ids] : !kiln.weight<4x64xf16>, tensor<3xi32> -> tensor<3x64xf32>
  %z = kiln.linear %e, %w2 : tensor<3x64xf32>, !kiln.weight<4x64xf16> -> tensor<3x4xf32>
  return %y, %z : tensor<3x2xf32>, tensor<3x4xf32>
}
