// A tiny static program for the test environment's images: the node's pause
// image (sandbox containers run it) and the test image that pods pull from
// the ECR stand-in. No dependencies: it builds in seconds.
module kubeecr.local/testenv/hello

go 1.26.0
