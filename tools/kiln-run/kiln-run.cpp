//===- kiln-run.cpp - generate text with a compiled .kiln model -----------===//

#include "RunTool.h"

int main(int argc, char **argv) {
  return kiln::run::runCommandLine(argc, argv, {"kiln-run", ""});
}
