// Package adoptiontest checks that the nested modules applications import
// resolve and build from a module proxy as a user's module would.
package adoptiontest
