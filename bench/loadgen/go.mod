module tenure.bench/loadgen

go 1.19
