// Command mandate is the Mandate MCP security gateway.
package main

import (
	"os"

	"github.com/mandate-mcp/mandate/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
