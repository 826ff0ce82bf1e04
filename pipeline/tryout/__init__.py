"""`gopatch try`: patched-source GOROOTs without make.bash."""
