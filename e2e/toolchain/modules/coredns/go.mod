module spanprof.local/e2e/toolchain/coredns

go 1.22
