// Command cclm is the one binary of cclm: the lab, the components (node
// agent, controllers, sync controller, toolkit) and the user's commands.
package main

import (
	"os"

	"github.com/cclm-io/cclm/internal/cli"
)

func main() {
	os.Exit(cli.Execute())
}
