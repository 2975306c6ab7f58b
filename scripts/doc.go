// Package scripts holds helper scripts used by developers and CI (starting
// throwaway servers, fetching tools). No Go code lives here.
package scripts
