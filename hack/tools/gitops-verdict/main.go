// Command gitops-verdict tells what GitOps tools make of an object, read as
// JSON from standard input, and prints the verdict as JSON:
//
//	gitops-verdict kstatus < obj.json              # {"status": ..., "message": ...}
//	gitops-verdict lua-health health.lua < obj.json       # {"status": ..., "message": ...}
//	gitops-verdict lua-discovery discovery.lua < obj.json # {"renew": {...}}
//	gitops-verdict lua-action action.lua < obj.json       # the object the action returns
//
// kstatus is sigs.k8s.io/cli-utils's status.Compute, as Flux's health checks
// and kpt call it. The Lua scripts run in gopher-lua, the interpreter Argo CD
// embeds, the way Argo CD runs resource customizations: the object is the
// global `obj` and the script returns its answer. Argo CD opens only a few
// libraries for them; the scripts here get the base library and `os.date`,
// all they use, so a script reaching for more fails here as it would there.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// The largest object read: a Kubernetes object is at most ~1.5 MiB in etcd.
const maxObjectBytes = 4 << 20

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-verdict:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: gitops-verdict kstatus | lua-health|lua-discovery|lua-action SCRIPT")
	}
	object, err := readObject(in)
	if err != nil {
		return err
	}
	var verdict any
	switch {
	case args[0] == "kstatus" && len(args) == 1:
		verdict, err = kstatus(object)
	case args[0] == "lua-health" && len(args) == 2:
		verdict, err = health(args[1], object)
	case (args[0] == "lua-discovery" || args[0] == "lua-action") && len(args) == 2:
		verdict, err = runScript(args[1], object)
	default:
		return fmt.Errorf("unknown command %q (or wrong number of arguments)", args)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(verdict)
}

func readObject(in io.Reader) (map[string]any, error) {
	data, err := io.ReadAll(io.LimitReader(in, maxObjectBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxObjectBytes {
		return nil, fmt.Errorf("object larger than %d bytes", maxObjectBytes)
	}
	// Whole numbers as int64, as the Kubernetes client reads them (kstatus
	// insists on it for metadata.generation).
	var object map[string]any
	if err := utiljson.Unmarshal(data, &object); err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}
	return object, nil
}

// kstatus is Flux's and kpt's verdict: status.Compute on the object.
func kstatus(object map[string]any) (map[string]string, error) {
	result, err := status.Compute(&unstructured.Unstructured{Object: object})
	if err != nil {
		return nil, err
	}
	return map[string]string{"status": result.Status.String(), "message": result.Message}, nil
}

// The health statuses Argo CD knows; it reads any other as Unknown.
var healthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// health runs a health script and checks its answer is one Argo CD takes:
// a known status, and a message that is a string if there is one.
func health(path string, object map[string]any) (any, error) {
	answer, err := runScript(path, object)
	if err != nil {
		return nil, err
	}
	hs, _ := answer.(map[string]any)
	status, _ := hs["status"].(string)
	if !healthStatuses[status] {
		return nil, fmt.Errorf("%s returned the health status %v, which Argo CD does not know", path, hs["status"])
	}
	if message, given := hs["message"]; given {
		if _, ok := message.(string); !ok {
			return nil, fmt.Errorf("%s returned a message that is not a string: %v", path, message)
		}
	}
	return hs, nil
}

// runScript runs a resource customization script with `obj` set, as Argo CD
// does, and returns what the script returns, converted back to JSON values.
func runScript(path string, object map[string]any) (any, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	if err := openLibraries(state); err != nil {
		return nil, err
	}
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(string(script)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	returned := state.Get(-1)
	if returned.Type() != lua.LTTable {
		return nil, fmt.Errorf("%s returned %s, not a table", path, returned.Type())
	}
	return fromLua(returned), nil
}

// openLibraries opens the base library and an `os` holding `date` alone:
// Argo CD opens base, table, package and a safe os (date, time, clock,
// difftime) unless a customization asks for every library.
func openLibraries(state *lua.LState) error {
	for _, library := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.OsLibName, lua.OpenOs}} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(library.open), NRet: 0, Protect: true},
			lua.LString(library.name)); err != nil {
			return err
		}
	}
	full := state.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := state.NewTable()
	safe.RawSetString("date", full.RawGetString("date"))
	state.SetGlobal(lua.OsLibName, safe)
	return nil
}

// toLua converts a JSON value to Lua as Argo CD does: objects and arrays
// become tables, numbers LNumber, null nil.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

// fromLua converts a Lua value back to JSON: a table with array entries is
// an array, any other table an object.
func fromLua(value lua.LValue) any {
	switch v := value.(type) {
	case *lua.LTable:
		if v.MaxN() > 0 {
			items := make([]any, 0, v.MaxN())
			for i := 1; i <= v.MaxN(); i++ {
				items = append(items, fromLua(v.RawGetInt(i)))
			}
			return items
		}
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) { object[key.String()] = fromLua(item) })
		return object
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return float64(v)
	case lua.LBool:
		return bool(v)
	default:
		return nil
	}
}
