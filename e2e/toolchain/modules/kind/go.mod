module spanprof.local/e2e/toolchain/kind

go 1.22
