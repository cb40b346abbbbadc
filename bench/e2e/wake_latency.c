// wake_latency: one-way latency of a loopback TCP message to a reader that slept idle for
// GAP_MS, the cost each proxy hop adds to a first streamed line (BENCHMARKS.md, "What limits
// the remaining targets"). Build: cc -O2 bench/e2e/wake_latency.c -o /tmp/wake_latency
// Run: /tmp/wake_latency [SAMPLES=200] [GAP_MS=20]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
static long long now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):200; int gap_ms=argc>2?atoi(argv[2]):20;
  int l=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};
  int one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,4); bind(l,(void*)&a,sizeof a); listen(l,1); socklen_t al=sizeof a; getsockname(l,(void*)&a,&al);
  if(fork()==0){ int c=socket(AF_INET,SOCK_STREAM,0); connect(c,(void*)&a,sizeof a); setsockopt(c,IPPROTO_TCP,TCP_NODELAY,&one,4);
    for(int i=0;i<n;i++){ usleep(gap_ms*1000); long long t=now(); write(c,&t,8);} _exit(0);}
  int s=accept(l,0,0); long long*d=malloc(n*8);
  for(int i=0;i<n;i++){ long long t; if(read(s,&t,8)!=8) break; d[i]=now()-t; }
  qsort(d,n,8,cmp); printf("one-way wake latency after %d ms idle: p50 %.1f us p90 %.1f us p99 %.1f us\n",gap_ms,d[n/2]/1e3,d[n*9/10]/1e3,d[n*99/100]/1e3);
}
