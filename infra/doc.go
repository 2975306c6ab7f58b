// Package infra holds deployment material for eventlake: Prometheus alert
// rules, dashboards and service definitions. It contains no Go code that the
// binary imports; the Go file exists so that tests can check the material
// (for example alert rules with promtool) next to where it lives.
package infra
