// Input of kiln-opt-errors.test: well-formed text that fails verification.
// A rank-0 kiln.quantize used to crash the verifier.
func.func @f(%x: tensor<f32>) {
  %c, %s = kiln.quantize %x {bits = 8, group = 1} : tensor<f32> -> tensor<i8>, tensor<f32>
  return
}
