package monotonic

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"slices"
	"strconv"
	"strings"
)

// origin says where a time.Time may have come from: a set of sources.
type origin uint8

const (
	mono origin = 1 << iota // time.Now: carries a monotonic reading
	wall                    // wall clock only: time.Unix, Date, Parse, ModTime, stripped
	past                    // a constant instant before 2001: "already expired" under any jump

	unknown origin = 0 // nothing known (a parameter never passed in the module, …)
)

// pastLimit is the last UNIX second a constant time.Unix(…) may name and
// still count as a fixed instant in the past rather than a real date.
const pastLimit = 1_000_000_000 // 2001-09-09

func (o origin) String() string {
	var s []string
	for _, b := range []struct {
		o    origin
		name string
	}{{mono, "monotonic"}, {wall, "wall-clock"}, {past, "fixed past"}} {
		if o&b.o != 0 {
			s = append(s, b.name)
		}
	}
	if len(s) == 0 {
		return "unknown"
	}
	return strings.Join(s, "+")
}

// Rules the checker reports.
const (
	// ruleUnix: t.Unix(), UnixNano(), UnixMilli() or UnixMicro() of a time
	// that is (or may be) a monotonic reading: a number for arithmetic on
	// the wall clock, legitimate only as a timestamp for the wire or disk.
	ruleUnix = "unix"
	// ruleStrip: Round(0)/Truncate(0) of any time, or Round, Truncate,
	// UTC, Local, In or AddDate of a monotonic reading (not just to print
	// it): the result has lost its monotonic reading.
	ruleStrip = "strip"
	// ruleMix: Sub, Before, After, Compare or Equal between a monotonic
	// reading and a wall-clock-only time (or time.Since/Until of the
	// latter): Go then compares wall clocks, and a clock step moves the
	// answer.
	ruleMix = "mix"
	// ruleDeadline: a wall-clock-only time given as a deadline
	// (SetDeadline, SetReadDeadline, SetWriteDeadline, context.WithDeadline).
	ruleDeadline = "deadline"
	// ruleElsewhere: a non-test file built only on other platforms (so
	// not type-checked here) that imports package time.
	ruleElsewhere = "elsewhere"
)

// finding is one report.
type finding struct {
	pos  token.Position
	file string // module-relative, slash-separated
	fn   string // enclosing declared function: "Func" or "Type.Method"
	rule string
	expr string
	msg  string
}

func (f finding) String() string {
	return fmt.Sprintf("%s:%d: [%s] %s (in %s): %s", f.file, f.pos.Line, f.rule, f.expr, f.fn, f.msg)
}

// resultKey names one result of a function: fn is a *types.Func or an
// *ast.FuncLit.
type resultKey struct {
	fn  any
	idx int
}

// checker holds the origins found so far, for the whole module at once.
// It follows values through assignments, range, struct literals, calls of
// module functions (arguments to parameters, return values to results) and
// clock functions held in variables; not through channels, interfaces or
// reflection. A field is one place for every value of its struct type.
type checker struct {
	u        *universe
	vars     map[types.Object]origin // time-valued variables, fields, parameters (maps, slices: their elements)
	funcVals map[types.Object]origin // clock-valued variables: what calling them returns
	results  map[resultKey]origin
	flows    []func() bool // each propagates one assignment; true if it changed something
}

func newChecker(u *universe) *checker {
	return &checker{u: u, vars: map[types.Object]origin{}, funcVals: map[types.Object]origin{}, results: map[resultKey]origin{}}
}

func isTime(t types.Type) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Time"
}

// holdsTime reports whether t is a time.Time, or a map, slice, array or
// pointer whose elements are.
func holdsTime(t types.Type) bool {
	for {
		if isTime(t) {
			return true
		}
		switch u := t.Underlying().(type) {
		case *types.Map:
			t = u.Elem()
		case *types.Slice:
			t = u.Elem()
		case *types.Array:
			t = u.Elem()
		case *types.Pointer:
			t = u.Elem()
		default:
			return false
		}
	}
}

// isClock reports whether t is a function type whose first result is a time.
func isClock(t types.Type) bool {
	s, ok := t.Underlying().(*types.Signature)
	return ok && s.Results().Len() > 0 && isTime(s.Results().At(0).Type())
}

func inModule(o types.Object, c *checker) bool {
	return o.Pkg() != nil && c.u.checked[o.Pkg().Path()] == o.Pkg()
}

func isPkgFunc(o types.Object, pkg string, names ...string) bool {
	f, ok := o.(*types.Func)
	return ok && f.Pkg() != nil && f.Pkg().Path() == pkg && slices.Contains(names, f.Name()) &&
		f.Type().(*types.Signature).Recv() == nil
}

// objOf returns the variable (or function) an expression names: for x.f
// the field, for m[k] and *p the container.
func (c *checker) objOf(e ast.Expr) types.Object {
	switch e := ast.Unparen(e).(type) {
	case *ast.Ident:
		if o := c.u.info.Uses[e]; o != nil {
			return o
		}
		return c.u.info.Defs[e]
	case *ast.SelectorExpr:
		if sel, ok := c.u.info.Selections[e]; ok {
			return sel.Obj()
		}
		return c.u.info.Uses[e.Sel]
	case *ast.IndexExpr:
		return c.objOf(e.X)
	case *ast.StarExpr:
		return c.objOf(e.X)
	}
	return nil
}

// originOf says where the time e may come from.
func (c *checker) originOf(e ast.Expr) origin {
	e = ast.Unparen(e)
	if call, ok := e.(*ast.CallExpr); ok {
		return c.resultOrigin(call, 0)
	}
	if v, ok := c.objOf(e).(*types.Var); ok {
		return c.vars[v]
	}
	return unknown
}

// timeMethod returns the name of the time.Time method that call calls,
// and its receiver expression.
func (c *checker) timeMethod(call *ast.CallExpr) (string, ast.Expr, bool) {
	se, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if !ok {
		return "", nil, false
	}
	sel, ok := c.u.info.Selections[se]
	if !ok || sel.Kind() != types.MethodVal || !isTime(sel.Recv()) {
		return "", nil, false
	}
	return sel.Obj().Name(), se.X, true
}

// stripping methods return a time without the monotonic reading.
var stripping = []string{"Round", "Truncate", "UTC", "Local", "In", "AddDate"}

// resultOrigin says where result idx of call may come from.
func (c *checker) resultOrigin(call *ast.CallExpr, idx int) origin {
	if tv, ok := c.u.info.Types[call.Fun]; ok && tv.IsType() { // a conversion
		if len(call.Args) == 1 {
			return c.originOf(call.Args[0])
		}
		return unknown
	}
	if name, recv, ok := c.timeMethod(call); ok {
		switch {
		case name == "Add" && idx == 0:
			return c.originOf(recv)
		case slices.Contains(stripping, name):
			return wall
		}
		return unknown
	}
	fun := ast.Unparen(call.Fun)
	if lit, ok := fun.(*ast.FuncLit); ok {
		return c.results[resultKey{lit, idx}]
	}
	switch o := c.objOf(fun).(type) {
	case *types.Func:
		switch {
		case isPkgFunc(o, "time", "Now"):
			return mono
		case isPkgFunc(o, "time", "Unix"):
			if c.constUnixPast(call) {
				return past
			}
			return wall
		case isPkgFunc(o, "time", "UnixMilli", "UnixMicro", "Date", "Parse", "ParseInLocation"):
			return wall
		case o.Name() == "ModTime" && idx == 0:
			return wall
		case o.Name() == "Deadline" && o.Pkg() != nil && o.Pkg().Path() == "context" && idx == 0:
			return mono // context deadlines come from time.Now().Add
		case inModule(o, c):
			return c.results[resultKey{o.Origin(), idx}]
		}
	case *types.Var:
		if idx == 0 {
			return c.funcVals[o]
		}
	}
	return unknown
}

// constUnixPast reports whether call is time.Unix(A, B) with constant
// arguments naming an instant before pastLimit.
func (c *checker) constUnixPast(call *ast.CallExpr) bool {
	if len(call.Args) != 2 {
		return false
	}
	sec, ok1 := c.u.info.Types[call.Args[0]]
	nsec, ok2 := c.u.info.Types[call.Args[1]]
	if !ok1 || !ok2 || sec.Value == nil || nsec.Value == nil {
		return false
	}
	s, ok := constant.Int64Val(sec.Value)
	return ok && s < pastLimit
}

// clockOrigin says what calling the function value e returns.
func (c *checker) clockOrigin(e ast.Expr) origin {
	e = ast.Unparen(e)
	if lit, ok := e.(*ast.FuncLit); ok {
		return c.results[resultKey{lit, 0}]
	}
	switch o := c.objOf(e).(type) {
	case *types.Func:
		switch {
		case isPkgFunc(o, "time", "Now"):
			return mono
		case inModule(o, c):
			return c.results[resultKey{o.Origin(), 0}]
		}
	case *types.Var:
		return c.funcVals[o]
	}
	return unknown
}

// flowInto records that the value got (of type t) is stored in obj.
func (c *checker) flowInto(obj types.Object, t types.Type, get func() origin, getClock func() origin) {
	v, ok := obj.(*types.Var)
	if !ok || t == nil {
		return
	}
	switch {
	case holdsTime(t) && get != nil:
		c.flows = append(c.flows, func() bool {
			o := c.vars[v] | get()
			changed := o != c.vars[v]
			c.vars[v] = o
			return changed
		})
	case isClock(t) && getClock != nil:
		c.flows = append(c.flows, func() bool {
			o := c.funcVals[v] | getClock()
			changed := o != c.funcVals[v]
			c.funcVals[v] = o
			return changed
		})
	}
}

// assign records lhs = rhs.
func (c *checker) assign(lhs, rhs ast.Expr) {
	c.flowInto(c.objOf(lhs), c.u.info.TypeOf(lhs),
		func() origin { return c.originOf(rhs) }, func() origin { return c.clockOrigin(rhs) })
}

// assignTuple records lhs = result idx of call.
func (c *checker) assignTuple(lhs ast.Expr, call *ast.CallExpr, idx int) {
	c.flowInto(c.objOf(lhs), c.u.info.TypeOf(lhs), func() origin { return c.resultOrigin(call, idx) }, nil)
}

func (c *checker) assignResult(key resultKey, t types.Type, get func() origin) {
	if !holdsTime(t) {
		return
	}
	c.flows = append(c.flows, func() bool {
		o := c.results[key] | get()
		changed := o != c.results[key]
		c.results[key] = o
		return changed
	})
}

// funcKey returns the key of a FuncDecl or FuncLit and its signature.
func (c *checker) funcKey(n ast.Node) (any, *types.Signature) {
	switch n := n.(type) {
	case *ast.FuncDecl:
		if f, ok := c.u.info.Defs[n.Name].(*types.Func); ok {
			return f, f.Type().(*types.Signature)
		}
	case *ast.FuncLit:
		if s, ok := c.u.info.TypeOf(n).(*types.Signature); ok {
			return n, s
		}
	}
	return nil, nil
}

// collect records every flow of a time (or of a clock function) in f.
func (c *checker) collect(f *ast.File) {
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		switch n := n.(type) {
		case *ast.AssignStmt:
			c.assignList(n.Lhs, n.Rhs)
		case *ast.ValueSpec:
			lhs := make([]ast.Expr, len(n.Names))
			for i, id := range n.Names {
				lhs[i] = id
			}
			c.assignList(lhs, n.Values)
		case *ast.RangeStmt:
			if n.Value != nil { // for k, v := range x: v is an element of x
				x := n.X
				c.flowInto(c.objOf(n.Value), c.u.info.TypeOf(n.Value), func() origin { return c.originOf(x) }, nil)
			}
		case *ast.ReturnStmt:
			c.collectReturn(n, stack)
		case *ast.CompositeLit:
			c.collectLiteral(n)
		case *ast.CallExpr:
			c.collectArgs(n)
		}
		return true
	})
}

func (c *checker) assignList(lhs, rhs []ast.Expr) {
	switch {
	case len(lhs) == len(rhs):
		for i := range lhs {
			c.assign(lhs[i], rhs[i])
		}
	case len(rhs) == 1:
		if call, ok := ast.Unparen(rhs[0]).(*ast.CallExpr); ok {
			for i := range lhs {
				c.assignTuple(lhs[i], call, i)
			}
		}
	}
}

func (c *checker) collectReturn(r *ast.ReturnStmt, stack []ast.Node) {
	var key any
	var sig *types.Signature
	for i := len(stack) - 1; i >= 0 && key == nil; i-- {
		key, sig = c.funcKey(stack[i])
	}
	if key == nil {
		return
	}
	res := sig.Results()
	switch {
	case len(r.Results) == res.Len():
		for i, e := range r.Results {
			c.assignResult(resultKey{key, i}, res.At(i).Type(), func() origin { return c.originOf(e) })
		}
	case len(r.Results) == 1 && res.Len() > 1:
		if call, ok := ast.Unparen(r.Results[0]).(*ast.CallExpr); ok {
			for i := range res.Len() {
				c.assignResult(resultKey{key, i}, res.At(i).Type(), func() origin { return c.resultOrigin(call, i) })
			}
		}
	}
}

func (c *checker) collectLiteral(lit *ast.CompositeLit) {
	t := c.u.info.TypeOf(lit)
	if t == nil {
		return
	}
	if p, ok := t.Underlying().(*types.Pointer); ok {
		t = p.Elem()
	}
	st, ok := t.Underlying().(*types.Struct)
	if !ok {
		return
	}
	for i, el := range lit.Elts {
		var field types.Object
		val := el
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok {
				field = c.u.info.Uses[id]
			}
			val = kv.Value
		} else if i < st.NumFields() {
			field = st.Field(i)
		}
		if field != nil {
			c.flowInto(field, field.Type(), func() origin { return c.originOf(val) }, func() origin { return c.clockOrigin(val) })
		}
	}
}

// collectArgs records that a call's arguments flow into the parameters of
// the module function it calls.
func (c *checker) collectArgs(call *ast.CallExpr) {
	var callee types.Object
	if se, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok {
		if sel, ok := c.u.info.Selections[se]; ok && sel.Kind() == types.MethodVal {
			callee = sel.Obj()
		}
	}
	if callee == nil {
		callee = c.objOf(call.Fun)
	}
	f, ok := callee.(*types.Func)
	if !ok || !inModule(f, c) {
		return
	}
	params := f.Origin().Type().(*types.Signature).Params()
	for i, a := range call.Args {
		if i >= params.Len() || (i == params.Len()-1 && f.Type().(*types.Signature).Variadic()) {
			break
		}
		p := params.At(i)
		c.flowInto(p, p.Type(), func() origin { return c.originOf(a) }, func() origin { return c.clockOrigin(a) })
	}
}

// solve propagates origins until nothing changes (they only grow, and
// there are three bits per place, so this ends).
func (c *checker) solve() {
	for changed := true; changed; {
		changed = false
		for _, f := range c.flows {
			if f() {
				changed = true
			}
		}
	}
}

// displayMethods are time.Time methods that only read a time for people.
var displayMethods = []string{"Format", "AppendFormat", "String", "Clock", "Date", "Year", "Month",
	"Day", "Hour", "Minute", "Second", "Weekday", "YearDay", "ISOWeek", "Zone"}

// deadlineSetters are methods that take a deadline as their only argument.
var deadlineSetters = []string{"SetDeadline", "SetReadDeadline", "SetWriteDeadline"}

// report walks f (named name, module-relative) after solve and returns
// what breaks the rules.
func (c *checker) report(f *ast.File, name string) []finding {
	var out []finding
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		add := func(rule, msg string) {
			out = append(out, finding{pos: c.u.fset.Position(call.Pos()), file: name, fn: enclosing(stack),
				rule: rule, expr: types.ExprString(call), msg: msg})
		}
		if m, recv, ok := c.timeMethod(call); ok {
			c.checkTimeMethod(call, m, recv, stack, add)
			return true
		}
		fun := ast.Unparen(call.Fun)
		obj := c.objOf(fun)
		switch {
		case isPkgFunc(obj, "time", "Since", "Until") && len(call.Args) == 1:
			if o := c.originOf(call.Args[0]); o&wall != 0 {
				add(ruleMix, fmt.Sprintf("the argument is a %v time: %s measures the wall clock, which may step", o, obj.Name()))
			}
		case isPkgFunc(obj, "context", "WithDeadline", "WithDeadlineCause") && len(call.Args) >= 2:
			if o := c.originOf(call.Args[1]); o&wall != 0 {
				add(ruleDeadline, fmt.Sprintf("the deadline is a %v time: it moves when the wall clock steps", o))
			}
		default:
			se, ok := fun.(*ast.SelectorExpr)
			if ok && slices.Contains(deadlineSetters, se.Sel.Name) && len(call.Args) == 1 && isTime(c.u.info.TypeOf(call.Args[0])) {
				if o := c.originOf(call.Args[0]); o&wall != 0 {
					add(ruleDeadline, fmt.Sprintf("the deadline is a %v time: it moves when the wall clock steps", o))
				}
			}
		}
		return true
	})
	return out
}

func (c *checker) checkTimeMethod(call *ast.CallExpr, m string, recv ast.Expr, stack []ast.Node, add func(rule, msg string)) {
	o := c.originOf(recv)
	switch m {
	case "Unix", "UnixNano", "UnixMilli", "UnixMicro":
		if o != wall && o != past && o != wall|past {
			add(ruleUnix, fmt.Sprintf("%s of a %v time: a wall-clock number, fit only for a timestamp on the wire or disk", m, o))
		}
	case "Sub", "Before", "After", "Compare", "Equal":
		if len(call.Args) != 1 {
			return
		}
		a := c.originOf(call.Args[0])
		if o&mono != 0 && a&wall != 0 || o&wall != 0 && a&mono != 0 {
			add(ruleMix, fmt.Sprintf("%s between a %v time and a %v time compares wall clocks, which may step", m, o, a))
		}
	case "Round", "Truncate", "UTC", "Local", "In", "AddDate":
		if (m == "Round" || m == "Truncate") && len(call.Args) == 1 {
			if tv, ok := c.u.info.Types[call.Args[0]]; ok && tv.Value != nil && constant.Sign(tv.Value) == 0 {
				add(ruleStrip, m+"(0) strips the monotonic reading: the result follows the wall clock")
				return
			}
		}
		if o&mono == 0 || displayed(stack) {
			return
		}
		add(ruleStrip, fmt.Sprintf("%s of a %v time strips the monotonic reading: the result follows the wall clock", m, o))
	}
}

// displayed reports whether the call on top of stack is only read by a
// display method (t.Local().Format(…)).
func displayed(stack []ast.Node) bool {
	if len(stack) < 2 {
		return false
	}
	se, ok := stack[len(stack)-2].(*ast.SelectorExpr)
	return ok && se.X == stack[len(stack)-1] && slices.Contains(displayMethods, se.Sel.Name)
}

// enclosing names the declared function around the top of stack.
func enclosing(stack []ast.Node) string {
	for i := len(stack) - 1; i >= 0; i-- {
		fd, ok := stack[i].(*ast.FuncDecl)
		if !ok {
			continue
		}
		if fd.Recv == nil || len(fd.Recv.List) == 0 {
			return fd.Name.Name
		}
		t := fd.Recv.List[0].Type
		for {
			switch x := t.(type) {
			case *ast.StarExpr:
				t = x.X
				continue
			case *ast.IndexExpr:
				t = x.X
				continue
			case *ast.IndexListExpr:
				t = x.X
				continue
			case *ast.ParenExpr:
				t = x.X
				continue
			}
			break
		}
		if id, ok := t.(*ast.Ident); ok {
			return id.Name + "." + fd.Name.Name
		}
		return fd.Name.Name
	}
	return "(package level)"
}

// checkElsewhere reports files built only on other platforms that import
// package time: this check cannot type-check them here.
func checkElsewhere(fset *token.FileSet, files map[string]*ast.File) []finding {
	var out []finding
	for name, f := range files {
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
				out = append(out, finding{pos: fset.Position(imp.Pos()), file: name, fn: "(imports)", rule: ruleElsewhere,
					expr: `import "time"`, msg: "built only on other platforms, so not type-checked here: check it by hand, then allowlist it"})
			}
		}
	}
	return out
}

// run checks pkgs (already type-checked in u) and returns the findings
// sorted by file and line.
func run(u *universe, pkgs []*sourcePackage) []finding {
	c := newChecker(u)
	for _, p := range pkgs {
		for _, f := range p.files {
			c.collect(f)
		}
	}
	c.solve()
	var out []finding
	for _, p := range pkgs {
		for i, f := range p.files {
			out = append(out, c.report(f, p.names[i])...)
		}
	}
	slices.SortFunc(out, func(a, b finding) int {
		if a.file != b.file {
			return strings.Compare(a.file, b.file)
		}
		return a.pos.Offset - b.pos.Offset
	})
	return out
}
