from vvkit.cli import main

main()
