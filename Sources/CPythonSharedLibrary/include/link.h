// CPythonSharedLibrary holds no code (see link.c).
typedef int pykernel_links_shared_libpython;
