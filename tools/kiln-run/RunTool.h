//===- RunTool.h - kiln-run's command line, shared with --emit=exe --------===//
//
// One command line for kiln-run and for the executables kiln-compile
// --emit=exe writes (kiln-exe-stub with a model appended): the same flags,
// generation, chat, --bench, --perplexity and --embed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_RUNTOOL_H
#define KILN_TOOLS_KILN_RUN_RUNTOOL_H

#include <string>

namespace kiln::run {

struct RunTool {
  /// The program in usage and messages ("kiln-run", or an executable's name).
  std::string name;
  /// The file holding the model when it is built into the program (an
  /// --emit=exe executable's own path); empty: -m names the model.
  std::string builtInModel;
};

/// Runs the command line (see --help) and returns the exit status; every
/// error is one line on stderr.
int runCommandLine(int argc, char **argv, const RunTool &tool);

} // namespace kiln::run

#endif // KILN_TOOLS_KILN_RUN_RUNTOOL_H
