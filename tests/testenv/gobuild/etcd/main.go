// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3.
// It is exactly what upstream's own main package does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
