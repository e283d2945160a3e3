from .cloud import main

main()
