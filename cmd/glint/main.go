package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "glint:", err)
		os.Exit(1)
	}
}

const usage = `Usage: glint <command> [flags]

Commands:
  serve   run a node: WHIP ingest, WHEP playback, the API and the pages
  load    drive a WHIP/WHEP server (this one or any other) and measure it
  chatload  fill one stream's chat with WebSocket clients and measure fan-out
  vod     list, export or delete the recordings in a node's data directory
  mesh    show the nodes sharing a Redis and where each stream is published

Run 'glint <command> --help' for a command's settings.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], os.LookupEnv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr, nil)
	case "load":
		return loadCmd(ctx, args[1:], stdout, stderr)
	case "chatload":
		return chatLoadCmd(ctx, args[1:], stdout, stderr)
	case "vod":
		return vodCmd(args[1:], stdout, stderr)
	case "mesh":
		return meshCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
