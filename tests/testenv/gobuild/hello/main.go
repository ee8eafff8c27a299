// Command hello says hello and then waits for SIGTERM or SIGINT, so that it
// can be both a pause container and a long-running test workload.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Println("hello from the kubeecr test image")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
