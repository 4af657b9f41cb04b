//go:build race

package integration

// raceEnabled builds the commands under test with -race too.
const raceEnabled = true
