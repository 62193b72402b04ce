//===- KilnInterfaces.td - kiln attribute interfaces --------*- tablegen -*-===//

#ifndef KILN_INTERFACES_TD
#define KILN_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Kiln_WeightLayoutAttrInterface : AttrInterface<"WeightLayoutAttrInterface"> {
  let cppNamespace = "::mlir::kiln";
  let description = [{
    An arrangement of a quantized weight's blocks that a target's kernels
    read (`#kiln.quant<..., target_layout = #kiln_cpu.<name>>`), defined and
    registered by that target, which also packs weights into it
    (kiln-pack-weights). The dialect only asks it what a weight in it takes:
    the codes and scales are the scheme's, the byte order is the layout's.
    Without one, a weight is its blocks row after row.
  }];
  let methods = [
    InterfaceMethod<
      "The layout's name, as blob names and messages write it.",
      "::llvm::StringRef", "getLayoutName", (ins)>,
    InterfaceMethod<
      "Fails, with a message, when weights of `scheme` have no form in this "
      "layout.",
      "::llvm::LogicalResult", "verifyScheme",
      (ins "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError,
           "::mlir::kiln::QuantSchemeAttr":$scheme)>,
    InterfaceMethod<
      "Bytes of a weight of `rows` rows of `k` values of `scheme` in this "
      "layout; nullopt on overflow or when `k` does not fit the layout.",
      "std::optional<uint64_t>", "getStorageBytes",
      (ins "::mlir::kiln::QuantSchemeAttr":$scheme, "uint64_t":$rows,
           "uint64_t":$k)>,
    InterfaceMethod<
      "Whether linear layers over weights of `scheme` in this layout take "
      "quantized activations (`activation_bits`): integer codes whose scales "
      "apply to whole 32-value blocks or parts of them.",
      "bool", "takesQuantizedActivations",
      (ins "::mlir::kiln::QuantSchemeAttr":$scheme)>
  ];
}

#endif // KILN_INTERFACES_TD
