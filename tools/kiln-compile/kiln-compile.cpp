//===- kiln-compile.cpp - model file in, compiled model out ---------------===//

#include "Compiler/Compiler.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <unistd.h>

namespace cl = llvm::cl;

// --help lists these alone, not the hundreds of LLVM options linked in.
static cl::OptionCategory kilnOptions("kiln-compile options");

static cl::opt<std::string> input(cl::Positional, cl::desc("<model.gguf | module.mlir>"),
                                  cl::Required, cl::cat(kilnOptions));
static cl::opt<std::string> output("o", cl::desc("Output file"),
                                   cl::value_desc("path"), cl::Required, cl::cat(kilnOptions));
static cl::opt<std::string>
    emit("emit",
         cl::desc("What to write: kiln (default: the compiled model), exe "
                  "(one executable: the runtime and the compiled model, run "
                  "like kiln-run -m), mlir "
                  "(the imported kiln module), llvm-mlir, llvm, asm, so, ptx (with "
                  "--target=cuda), gguf (the model with its --quantize'd "
                  "weights, for llama.cpp)"),
         cl::init("kiln"), cl::cat(kilnOptions));
static cl::opt<std::string>
    target("target",
           cl::desc("Targets: cpu or cuda (PTX, and cubins for sm_90a and "
                    "sm_80 when ptxas is installed)"),
           cl::init("cpu"), cl::cat(kilnOptions));
static cl::opt<std::string>
    cpu("cpu", cl::desc("CPU variant for --emit=llvm/asm/so: x86-64-v4 or "
                        "x86-64-v3"),
        cl::init("x86-64-v4"), cl::cat(kilnOptions));
static cl::opt<int64_t> ctx("ctx", cl::desc("KV cache positions (default: "
                                            "min(model context, 4096))"),
                            cl::init(0), cl::cat(kilnOptions));
static cl::opt<int64_t> maxTokens("max-tokens",
                                  cl::desc("Most tokens per step (prompt "
                                           "chunk size, default 256)"),
                                  cl::init(256), cl::cat(kilnOptions));
static cl::opt<mlir::kiln::UnstructuredStorage> unstructured(
    "unstructured",
    cl::desc("With int8 activations on the CPU: how Q4_0/Q8_0 weights pruned "
             "unstructured are stored"),
    cl::values(clEnumValN(mlir::kiln::UnstructuredStorage::Auto, "auto",
                          "bitmap where its kernel measured faster than the "
                          "dense one, else dense (default)"),
               clEnumValN(mlir::kiln::UnstructuredStorage::Bitmap, "bitmap",
                          "bitmap compressed (keep bits, kept codes)"),
               clEnumValN(mlir::kiln::UnstructuredStorage::Dense, "dense",
                          "dense, as unpruned weights")),
    cl::init(mlir::kiln::UnstructuredStorage::Auto));

static cl::opt<mlir::kiln::ActivationPrecision> activations(
    "activations", cl::desc("Activations of quantized linear layers"),
    cl::values(clEnumValN(mlir::kiln::ActivationPrecision::Int8, "int8",
                          "integer dot products, as llama.cpp (default)"),
               clEnumValN(mlir::kiln::ActivationPrecision::F32, "f32",
                          "exact"),
               clEnumValN(mlir::kiln::ActivationPrecision::Int2, "int2",
                          "2-bit codes in int8, the same integer kernels"),
               clEnumValN(mlir::kiln::ActivationPrecision::Int3, "int3", ""),
               clEnumValN(mlir::kiln::ActivationPrecision::Int4, "int4", ""),
               clEnumValN(mlir::kiln::ActivationPrecision::Int5, "int5", ""),
               clEnumValN(mlir::kiln::ActivationPrecision::Int6, "int6", ""),
               clEnumValN(mlir::kiln::ActivationPrecision::Int7, "int7", "")),
    cl::init(mlir::kiln::ActivationPrecision::Int8), cl::cat(kilnOptions));
static cl::opt<std::string> kernels(
    "kernels",
    cl::desc("Kernels for --emit=llvm/asm/so: native (for --cpu, default) or "
             "generic (portable vector code)"),
    cl::init("native"), cl::cat(kilnOptions));
static cl::opt<std::string> weightsOut(
    "weights-out",
    cl::desc("For an .mlir input: write the weights the emitted code reads "
             "(repacked for its kernels) to this file"),
    cl::value_desc("file"), cl::init(""), cl::cat(kilnOptions));
static cl::opt<std::string> quantize(
    "quantize",
    cl::desc("Quantize the float weights of linear layers by rounding to "
             "nearest: bits=2..8, group=N|channel, sym|asym, "
             "scale=f16|bf16|f32, format=packed|gguf (e.g. "
             "bits=4,group=32,asym,format=gguf)"),
    cl::value_desc("options"), cl::init(""), cl::cat(kilnOptions));
static cl::opt<bool> calibrationTaps(
    "calibration-taps",
    cl::desc("Keep each linear layer's input in scratch after a step and list "
             "where in the manifest, for kiln-run --collect-stats (with "
             "--activations=f32)"),
    cl::init(false), cl::cat(kilnOptions));
static cl::opt<std::string> prune(
    "prune",
    cl::desc("Zero the least important float weights of linear layers "
             "(before --quantize): pattern=unstructured|nm|block, rate=R, "
             "n=N, m=M, block=RxC, criterion=magnitude|wanda|sparsegpt, "
             "calibration=FILE.kstats (e.g. pattern=nm,n=2,m=4)"),
    cl::value_desc("options"), cl::init(""), cl::cat(kilnOptions));
static cl::opt<std::string> distill(
    "distill",
    cl::desc("With --prune: refit the kept weights to the unpruned model "
             "(kiln-distill) on the statistics in FILE.kstats; statistics of "
             "the pruned model collected beside the teacher (kiln-run "
             "--collect-stats --teacher) fit it on its own inputs"),
    cl::value_desc("FILE.kstats"), cl::init(""), cl::cat(kilnOptions));
static cl::opt<int64_t> tensorParallel(
    "tp", cl::desc("Tensor-parallel ranks: one step function each "
                   "(run with mpirun -np N kiln-run --tp N)"),
    cl::init(1), cl::cat(kilnOptions));
static cl::opt<int64_t> pipelineParallel(
    "pp", cl::desc("Pipeline stages, one rank each (run with mpirun -np N "
                   "kiln-run --pp N)"),
    cl::init(1), cl::cat(kilnOptions));
static cl::opt<bool> batchedStep(
    "batched-step",
    cl::desc("Also compile a step over tokens of several sequences, for "
             "kiln-server's batched decode"),
    cl::init(false), cl::cat(kilnOptions));
static cl::opt<bool> quiet("q", cl::desc("No progress bar"), cl::init(false),
                           cl::cat(kilnOptions));

/// A one-line bar on stderr, redrawn in place; only on a terminal.
static void drawProgress(const std::string &stage, double fraction) {
  constexpr int width = 30;
  int filled = int(fraction * width + 0.5);
  std::string bar(filled, '=');
  bar.resize(width, ' ');
  llvm::errs() << "\r[" << bar << "] " << llvm::format("%3d%%", int(fraction * 100))
               << " " << stage << "\x1b[K";
  if (fraction >= 1.0)
    llvm::errs() << "\n";
  llvm::errs().flush();
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(kilnOptions);
  cl::ParseCommandLineOptions(argc, argv,
                              "Kiln: compile a model (GGUF) into a .kiln "
                              "artifact, or an MLIR module into host code\n");
  kiln::CompileOptions options;
  options.input = input;
  options.output = output;
  // --emit=exe appends the model to the runtime program built and installed
  // next to this one.
  std::string self = llvm::sys::fs::getMainExecutable(
      argv[0], reinterpret_cast<void *>(&drawProgress));
  options.executableStub =
      (llvm::sys::path::parent_path(self) + "/kiln-exe-stub").str();
  options.target = target;
  options.cpuVariant = cpu;
  options.contextLength = ctx;
  options.maxTokens = maxTokens;
  options.activations = activations;
  options.unstructured = unstructured;
  options.kernels = kernels;
  options.weightsOutput = weightsOut;
  options.calibrationTaps = calibrationTaps;
  options.tensorParallel = tensorParallel;
  options.pipelineParallel = pipelineParallel;
  options.batchedStep = batchedStep;
  if (!kiln::parseEmitKind(emit, options.emit)) {
    llvm::WithColor::error(llvm::errs(), "kiln-compile")
        << "unknown --emit=" << emit
        << " (kiln, exe, mlir, llvm-mlir, llvm, asm, so, ptx, gguf)\n";
    return 1;
  }
  if (quantize.getNumOccurrences()) {
    llvm::Expected<kiln::QuantizeOptions> parsed =
        kiln::parseQuantizeOptions(quantize);
    if (!parsed) {
      llvm::WithColor::error(llvm::errs(), "kiln-compile")
          << llvm::toString(parsed.takeError()) << "\n";
      return 1;
    }
    options.quantize = *parsed;
  }
  if (prune.getNumOccurrences()) {
    llvm::Expected<kiln::PruneOptions> parsed = kiln::parsePruneOptions(prune);
    if (!parsed) {
      llvm::WithColor::error(llvm::errs(), "kiln-compile")
          << llvm::toString(parsed.takeError()) << "\n";
      return 1;
    }
    options.prune = *parsed;
  }
  options.distill = distill;
  if (tensorParallel < 1 || pipelineParallel < 1 ||
      tensorParallel * pipelineParallel > 4096) {
    llvm::WithColor::error(llvm::errs(), "kiln-compile")
        << "--tp and --pp must be >= 1 (at most 4096 ranks)\n";
    return 1;
  }
  if (ctx < 0 || maxTokens <= 0) {
    llvm::WithColor::error(llvm::errs(), "kiln-compile")
        << "--ctx must be >= 0 and --max-tokens > 0\n";
    return 1;
  }
  if (!quiet && isatty(STDERR_FILENO))
    options.progress = drawProgress;
  if (llvm::Error e = kiln::compile(options)) {
    if (options.progress)
      llvm::errs() << "\n";
    llvm::WithColor::error(llvm::errs(), "kiln-compile") << llvm::toString(std::move(e)) << "\n";
    return 1;
  }
  return 0;
}
