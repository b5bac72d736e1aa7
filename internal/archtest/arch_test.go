// Package archtest checks the dependency rules of docs/architecture.md
// against what the packages import (`go list -json ./...`, tests left out:
// a test may reach anything it needs to set up real parts).
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/paybound/paybound"

// The kinds of package, as docs/architecture.md names them. Every package
// of the module has one: a new package fails TestDependencyRules until it
// is given its kind here and its place in the document.
type kind string

const (
	domain     kind = "domain"      // the root: types, coded errors, the Store interfaces
	block      kind = "block"       // pure building blocks: no state, no I/O of their own
	engine     kind = "engine"      // the ledger: the single writer and its batch
	store      kind = "store"       // a Store implementation
	storeKit   kind = "store kit"   // what the stores share (row scanning, column lists)
	core       kind = "core"        // the payments core
	capability kind = "capability"  // one capability: state, batch part, store interface, handler
	adapter    kind = "adapter"     // a protocol adapter (REST, later MCP, ACP, the wallet)
	adapterKit kind = "adapter kit" // the REST toolkit capabilities offer their routes with
	public     kind = "public"      // a public package for Go users (the SDK)
	command    kind = "command"     // cmd/paybound and its CLI and load generator
	testKit    kind = "test kit"    // shared test code (conformance suites)
)

// kindOf classifies a package of the module by its import path.
func kindOf(path string) (kind, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	switch {
	case rel == "":
		return domain, true
	case rel == "client", strings.HasPrefix(rel, "client/"):
		return public, true
	case rel == "x402":
		return public, true
	case rel == "x402/wire":
		return block, true
	case rel == "cmd/paybound", strings.HasPrefix(rel, "cmd/paybound/"):
		return command, true
	}
	k, ok := internal[strings.TrimPrefix(rel, "internal/")]
	return k, ok && strings.HasPrefix(rel, "internal/")
}

// internal gives the kind of each package under internal/.
var internal = map[string]kind{
	"httpsig": block, "tlog": block, "policy": block, "risk": block, "stepup": block, "strictjson": block,
	"ledger":       engine,
	"sqlite":       store,
	"postgres":     store,
	"sqlstore":     storeKit,
	"service":      core,
	"agentid":      capability,
	"confirm":      capability,
	"disputes":     capability,
	"translog":     capability,
	"mandates":     capability,
	"riskctl":      capability,
	"paylinks":     capability,
	"settlement":   capability,
	"checkout":     capability,
	"acp":          adapter,
	"mcpserver":    adapter,
	"webhooks":     capability,
	"x402pay":      capability,
	"billing":      capability,
	"mandatereqs":  capability,
	"signin":       capability,
	"gateway":      adapter,
	"whsig":        block,
	"httpapi":      adapter,
	"wallet":       adapter,
	"httpapi/rest": adapterKit,
	"storetest":    testKit,
	"archtest":     testKit,
}

// allowed says which kinds of package each kind may import.
var allowed = map[kind][]kind{
	domain:     {},
	block:      {domain, block},
	engine:     {domain, block},
	storeKit:   {domain, block},
	store:      {domain, block, storeKit},
	core:       {domain, block, engine},
	adapterKit: {domain, block, core},
	capability: {domain, block, engine, core, adapterKit},
	adapter:    {domain, block, engine, core, capability, adapterKit},
	public:     {domain, block},
	command:    {domain, block, engine, store, core, capability, adapter, adapterKit, public, command},
	testKit:    {domain, block, engine, store, storeKit},
}

// noHTTP lists the kinds that must not import net/http: the payments core
// and the capabilities take domain values, so that the REST API, the MCP
// server and ACP can all call them. There is no exception: the log's
// witness client sends its requests through a transport the command gives
// it.
var noHTTP = []kind{domain, engine, store, storeKit, core, capability}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	return pkgs
}

// TestDependencyRules: every package is of a known kind and imports only
// the kinds its kind may; capabilities never import one another; only the
// command knows the concrete stores.
func TestDependencyRules(t *testing.T) {
	for _, p := range listPackages(t) {
		from, ok := kindOf(p.ImportPath)
		if !ok {
			t.Errorf("%s has no kind: add it to internal/archtest and docs/architecture.md", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if imp == "net/http" && slices.Contains(noHTTP, from) {
				t.Errorf("%s (%s) imports net/http: take domain values and leave HTTP to the adapters", p.ImportPath, from)
			}
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to, ok := kindOf(imp)
			if !ok {
				continue // reported as a package of its own
			}
			if !slices.Contains(allowed[from], to) {
				t.Errorf("%s (%s) imports %s (%s): a %s may import only %v", p.ImportPath, from, imp, to, from, allowed[from])
			}
			if from == capability && to == capability {
				t.Errorf("%s imports %s: a capability reaches another only through an interface it declares", p.ImportPath, imp)
			}
		}
	}
}

// TestRulesCatchABreak: the rules are not vacuous. A store that imported
// the core, or the root that imported anything of the module, is caught.
func TestRulesCatchABreak(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{module + "/internal/sqlite", module + "/internal/service"},
		{module, module + "/internal/ledger"},
		{module + "/internal/httpapi", module + "/internal/postgres"},
		{module + "/internal/service", module + "/internal/httpapi"},
		{module + "/client", module + "/internal/service"},
	} {
		from, _ := kindOf(c.from)
		to, _ := kindOf(c.to)
		if slices.Contains(allowed[from], to) {
			t.Errorf("%s → %s would pass the rules", c.from, c.to)
		}
	}
}
