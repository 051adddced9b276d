module spanprof.local/e2e/toolchain/crictl

go 1.22
