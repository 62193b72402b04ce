//===- kiln-exe-stub.cpp - the runtime half of kiln-compile --emit=exe ----===//
//
// kiln-compile --emit=exe copies this program and appends a compiled model
// (KilnExecutableTrailer in kiln/runtime/Artifact.h). The result behaves as
// `kiln-run -m MODEL` does, its model mapped from its own file and verified
// at start. It links the runtime statically: it needs no Kiln installed.
//
//===----------------------------------------------------------------------===//

#include "RunTool.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <unistd.h>

int main(int argc, char **argv) {
  std::string name = argc > 0 && argv[0][0] ? argv[0] : "kiln-exe";
  name = name.substr(name.rfind('/') + 1);
  // The file this process runs, whatever directory or name it was started
  // by; messages about the model name it.
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "%s: error: cannot find its own file: %s\n",
                 name.c_str(), n < 0 ? std::strerror(errno) : "empty path");
    return 1;
  }
  self[n] = '\0';
  return kiln::run::runCommandLine(argc, argv, {name, self});
}
