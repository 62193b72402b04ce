// RUN: kiln-opt %s --kiln-pack-weights=target=cpu | FileCheck %s
// target=cpu is the default.
// RUN: kiln-opt %s --kiln-pack-weights | FileCheck %s
// The packed bytes against a numpy reference of the CPU's rows16 layout.
// RUN: kiln-opt %s --kiln-pack-weights=target=cpu | %python %S/Inputs/rows16_reference.py %s | FileCheck %s --check-prefix=BYTES
// Packed weights are printed as blobs, and parse back.
// RUN: kiln-opt %s --kiln-pack-weights=target=cpu | kiln-opt | %python %S/Inputs/rows16_reference.py %s | FileCheck %s --check-prefix=BYTES
// RUN: not kiln-opt %S/Inputs/pack-missing-file.mlir --kiln-pack-weights 2>&1 | FileCheck %s --check-prefix=MISSING
// A target Kiln does not know (test/Dialect/KilnGPU packs for cuda).
// RUN: not kiln-opt %s --kiln-pack-weights=target=tpu 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// BYTES: q4_0_source: 1152 packed bytes match
// BYTES: q8_0_source: 1088 packed bytes match
// MISSING: error: 'kiln.weight' op does-not-exist.gguf: No such file or directory
// UNKNOWN: Cannot find option named 'tpu'

// A weight shared by an embedding and two linear layers (tied output), and a
// second kiln.weight of the same bytes: packed once, into one blob. 18 rows:
// a group of 16 and a padded one.
// CHECK-LABEL: func.func @tied
// CHECK-NOT: layout = gguf>>
// CHECK: %[[P:.*]] = kiln.weight dense_resource<[[BLOB:q4_0_rows16[_0-9]*]]> : tensor<1152xi8> -> !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: kiln.embedding %[[P]][
// CHECK: kiln.linear %{{.*}}, %[[P]]
// CHECK: kiln.linear %{{.*}}, %[[P]]
// CHECK: %[[P2:.*]] = kiln.weight dense_resource<[[BLOB]]> : tensor<1152xi8> -> !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: kiln.linear %{{.*}}, %[[P2]]
func.func @tied(%ids: tensor<2xi32>) -> (tensor<2x18xf32>, tensor<2x18xf32>, tensor<2x18xf32>) {
  %w = kiln.weight dense_resource<q4_0_source> : tensor<648xi8> -> !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %x = kiln.embedding %w[%ids] : !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>, tensor<2xi32> -> tensor<2x64xf32>
  %y = kiln.linear %x, %w : tensor<2x64xf32>, !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<2x18xf32>
  %z = kiln.linear %x, %w : tensor<2x64xf32>, !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<2x18xf32>
  %w2 = kiln.weight dense_resource<q4_0_source> : tensor<648xi8> -> !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %t = kiln.linear %x, %w2 : tensor<2x64xf32>, !kiln.weight<18x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<2x18xf32>
  return %y, %z, %t : tensor<2x18xf32>, tensor<2x18xf32>, tensor<2x18xf32>
}

// Kiln's packed layout with f8 scales has no rows16 form (nor do packed
// layers of 18 rows: rows16 writes 16 at a time), f32 weights need none:
// their file stays unread.
// CHECK-LABEL: func.func @not_packed
// CHECK: %[[K:.*]] = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 8704> -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f8E4M3FN>>
// CHECK: kiln.linear %{{.*}}, %[[K]]
// CHECK: %[[N:.*]] = kiln.weight #kiln.external<"m.gguf", offset = 8704, size = 2592> -> !kiln.weight<18x256x#kiln.quant<bits = 4, group = 32, scale = f16>>
// CHECK: kiln.linear %{{.*}}, %[[N]]
// CHECK: %[[F:.*]] = kiln.weight #kiln.external<"m.gguf", offset = 11296, size = 65536> -> !kiln.weight<64x256xf32>
// CHECK: kiln.linear %{{.*}}, %[[F]]
func.func @not_packed(%x: tensor<2x256xf32>) -> (tensor<2x64xf32>, tensor<2x18xf32>, tensor<2x64xf32>) {
  %k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 8704> -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f8E4M3FN>>
  %u = kiln.linear %x, %k : tensor<2x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f8E4M3FN>> -> tensor<2x64xf32>
  %n = kiln.weight #kiln.external<"m.gguf", offset = 8704, size = 2592> -> !kiln.weight<18x256x#kiln.quant<bits = 4, group = 32, scale = f16>>
  %w = kiln.linear %x, %n : tensor<2x256xf32>, !kiln.weight<18x256x#kiln.quant<bits = 4, group = 32, scale = f16>> -> tensor<2x18xf32>
  %f = kiln.weight #kiln.external<"m.gguf", offset = 11296, size = 65536> -> !kiln.weight<64x256xf32>
  %v = kiln.linear %x, %f : tensor<2x256xf32>, !kiln.weight<64x256xf32> -> tensor<2x64xf32>
  return %u, %w, %v : tensor<2x64xf32>, tensor<2x18xf32>, tensor<2x64xf32>
}

// Q8_0, 3 rows: one group of 16, 13 of them zero padding.
// CHECK-LABEL: func.func @q8_0
// CHECK: %[[Q:.*]] = kiln.weight dense_resource<q8_0_rows16{{[_0-9]*}}> : tensor<1088xi8> -> !kiln.weight<3x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: kiln.linear %{{.*}}, %[[Q]]
func.func @q8_0(%x: tensor<2x64xf32>) -> tensor<2x3xf32> {
  %w = kiln.weight dense_resource<q8_0_source> : tensor<204xi8> -> !kiln.weight<3x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<2x64xf32>, !kiln.weight<3x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>> -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// The gguf blocks are gone from the output; the packed blobs are printed.
// CHECK: {-#
// CHECK-NOT: _source
// CHECK: q4_0_rows16
// CHECK-NOT: _source

{-#
  dialect_resources: {
    builtin: {
      q4_0_source: "0x040000002B28A89615F99E665EF272C07D10FC4C7730B126C044F8945D5792597067937B4AC0043B802C711702AAA6D7751D109FEB28F78774E5952D302F49C9BA45B9007AE80D79C0869D8A0625DAFA2FB80F560942F04BDF59ECB2B96A812A4D7683D67974D877D68C8EBD08BC71ED43285114E28EA6921930A65885B00D93A6AB182E5D058E6C62553DECF1B5AEF9611058E10B244FA74DDC3651CBEF752BFA54E89D34A6A92DF69020D925247968C9DBEEC851F02938352DCB81E3D06EE060A9DEF1650C741062C73327B53B7DDB1DE06422D72F1C6612EF7CC30D222D97B940E1E212F249D057903F1E9522192C49BEB400C00B446B30C9874040C9EA527C260A2B2DEAD12AC7C7AF1A92A689481EEAD72C088305E38A43AC99F363898B41D721B6752B4CB6B388397AEA8E7F03BDB9CD1CF5E78928575E4DE09102E3382DABB4A71D826CF2132EBEBA17CC9EF2DA79EE4A951D7EC9FFCCEC2CABF4E891C11A03F3FEDEC25ABB81EA14D02DC8E4FDAED11D088036E461F5A043EF72992C9389A7F9CC6CD19DA4F55F512AD8C06FA228655C22201F8F2DEBF3DBD4CB92919DD1EC24638D4EE927888B679FF9B521FF526EC3B42D2F783A9AF8AA54F661F68E275BE29F3DC72D409683FE8909E3B1BEB782FE83C375116A2707C21D09361E4E303D4E16332ADDCF13992C533AE9AD2661654F76C6E8777A0D18B17124A68DBFAF4F9C07DF5D6FF42CE01411B2252D15B08446BF2B409BD8E72B4582812D7502271FFB322D84B03EF16FDF8BCB2AC83B25492B1B2CD970AD3D161F915B657120B2BF1BA72C15D8867E31B387E343D990B7F6880E76382DE67BDC33B5FC0CDCD87BC96C26FE11891B2DC40174CA6688FE4A8E65797F66E56E26EB2623287253C0FDCF01A4543F63DAB33A12",
      q8_0_source: "0x04000000F72CDA67998EA2382247CC2E7CFFA7FC8F3101BE524011B1CC89A16FF99748B21A8E9721159FEF6B293271E7C1814F5402FCB75A40012D947B92AB4A11B8DCA638E8FFC27828D94BBBF8DF7EC39946CBA86136EFB945E3EE55E70962CED00B0BB310668BC69900281380E42E5414CCD7C6EB688A4EE68157AF897927DB30F8B892CBA1ADF21084DE8F254FC94BBE307C051C65FA41FDF7136C7BC0E28D8E65AF048164B37B1A9CC1FF561F2EFC9F184ECF29AD7E28B0A44304D45FB241C2747005FA02EFBF5F865B0E655185"
    }
  }
#-}
