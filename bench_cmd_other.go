//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// benchCmd: the load generator's receive path and its child processes use
// Linux facilities (epoll, Pdeathsig); Vigil's deployment targets Linux.
func benchCmd(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("vigil bench runs on Linux only")
}
