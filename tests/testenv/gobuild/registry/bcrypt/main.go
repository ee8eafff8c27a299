// Command bcrypt reads one password on stdin and prints its bcrypt hash, the
// form the registry's htpasswd file holds. The password comes on stdin, not
// as an argument, so that it never shows in a process list.
//
// MinCost: the registry compares a pull's password against this hash on
// every request, and these passwords live minutes in a test, not years.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bcrypt:", err)
		os.Exit(1)
	}
	password := strings.TrimSuffix(string(in), "\n")
	// bcrypt compares the first 72 bytes only: a longer password would let
	// passwords that differ only after byte 72 stand in for each other.
	if len(password) == 0 || len(password) > 72 {
		fmt.Fprintln(os.Stderr, "bcrypt: the password must be 1 to 72 bytes")
		os.Exit(2)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bcrypt:", err)
		os.Exit(1)
	}
	fmt.Println(string(hash))
}
