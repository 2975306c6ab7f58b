// Package e2e holds end-to-end tests: they start the real eventlake binary
// (and the real servers it talks to) on free loopback ports and check what
// users see. There is no library code here.
package e2e
