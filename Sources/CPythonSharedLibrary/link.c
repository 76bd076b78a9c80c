// This target holds no code: it links the shared libpython3.11.so into the library products and
// the tests that depend on it (Package.swift says why the `pykernel` program does not). SwiftPM
// needs a source file for a target; this declaration keeps the unit from being empty.
#include "link.h"
