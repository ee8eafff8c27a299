module kubeecr.deft.com/bench/reference

go 1.26
